"""`/api/v1/conversations`: open, list, read history and send without a socket."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from aiohttp import web

from actors.conversation import AUTO_CHANNEL, SendMessage
from handlers.envelope import ok, utc_json
from handlers.keys import CHAT_LIMITS, CHAT_ROUTER, CONVERSATIONS, SETTINGS
from handlers.openapi import operation
from handlers.records import listing, page_request, path_id
from handlers.schemas.chat import (
    ConversationListQuery,
    ConversationResponse,
    HistoryQuery,
    MessageResponse,
    OpenConversationRequest,
    SendMessageRequest,
)
from handlers.schemas.common import IdPath, PageOf
from handlers.security import authenticate
from handlers.validation import parse_body, parse_query
from mitra.chat import ConversationQuery, ConversationSummary
from mitra.errors import InvalidInput

routes = web.RouteTableDef()
TAGS = ("chat",)


def _shape(summary: ConversationSummary) -> dict[str, Any]:
    """The summary as `ConversationResponse` dumps it (a test compares the two), built
    directly: GET /conversations answers many of these per request."""
    return {
        "id": str(summary.id),
        "customer_id": str(summary.customer_id) if summary.customer_id is not None else None,
        "title": summary.title,
        "member_ids": [str(member) for member in summary.member_ids],
        "last_seq": summary.last_seq,
        "last_message_at": utc_json(summary.last_message_at),
        "unread": summary.unread,
        "created_at": utc_json(summary.created_at),
    }


@routes.post("/api/v1/conversations")
@operation(
    "Open a conversation",
    description="With `customer_id`, staff get their chat with that customer (the existing one"
    " if there is one: 200). A policyholder gets their customer's chat with the agent, the one"
    " the agent uses, and becomes a member of it; with no `customer_id`, for the one customer"
    " linked to their account (409 when none is linked yet). With `participant_ids`, a new chat"
    " among staff (201).",
    tags=TAGS,
    body=OpenConversationRequest,
    response=ConversationResponse,
    status=201,
    also=(200,),
    errors=(404, 409),
)
async def open_conversation(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    body = await parse_body(request, OpenConversationRequest)
    service = request.app[CONVERSATIONS]
    if body.participant_ids is None:
        summary, created = await service.open_with_customer(principal, body.customer_id)
    else:
        summary = await service.open_among_staff(principal, body.participant_ids, body.title)
        created = True
    status = 201 if created else 200
    return ok(_shape(summary), message="conversation opened", status=status)


@routes.get("/api/v1/conversations")
@operation(
    "The caller's conversations, newest activity first, with unread counts",
    description="`q` finds conversations by the customer's name or phone number, or by title.",
    tags=TAGS,
    query=ConversationListQuery,
    response=PageOf[ConversationResponse],
)
async def list_conversations(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    query = parse_query(request, ConversationListQuery)
    page = await request.app[CONVERSATIONS].list_for(
        principal, ConversationQuery(q=query.q, page=page_request(query.page, query.limit))
    )
    return ok(listing(page, _shape))


@routes.get("/api/v1/conversations/{id}/messages")
@operation(
    "A page of a conversation's messages in seq order",
    description="`after_seq` pages forward (oldest first); otherwise the newest `limit`"
    " messages before `before_seq` (or the end).",
    tags=TAGS,
    path=IdPath,
    query=HistoryQuery,
    response=list[MessageResponse],
    errors=(404,),
)
async def conversation_messages(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    conversation_id = path_id(request, "conversation")
    query = parse_query(request, HistoryQuery)
    messages = await request.app[CONVERSATIONS].history(
        principal,
        conversation_id,
        before_seq=query.before_seq,
        after_seq=query.after_seq,
        limit=query.limit,
    )
    return ok([MessageResponse.model_validate(asdict(message)) for message in messages])


@routes.post("/api/v1/conversations/{id}/messages")
@operation(
    "Send a message without a socket",
    description="The same path as the socket's send: the same `client_msg_id` again returns"
    " the first acceptance and stores nothing new. It counts toward the sender's message"
    " budget with the socket's sends (429 with Retry-After past it).",
    tags=TAGS,
    path=IdPath,
    body=SendMessageRequest,
    response=MessageResponse,
    status=201,
    errors=(404, 429, 503),
)
async def send_message(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    conversation_id = path_id(request, "conversation")
    body = await parse_body(request, SendMessageRequest)
    limit = request.app[SETTINGS].chat.max_body_chars
    if len(body.body) > limit:
        raise InvalidInput.for_field("body", f"must be at most {limit} characters")
    request.app[CHAT_LIMITS].send(principal.user_id)
    direction = "outbound" if principal.role.is_staff else "inbound"
    stored = await request.app[CHAT_ROUTER].send(
        principal.tenant_id,
        conversation_id,
        SendMessage(
            principal.user_id,
            body.client_msg_id,
            body.body,
            body.channel or AUTO_CHANNEL,
            direction,
        ),
    )
    return ok(MessageResponse.model_validate(asdict(stored)), message="accepted", status=201)
