"""`/api/v1/whatsapp` and media: templates to customers (also outside the 24-hour window), and
customers' media streamed from Meta on demand (never stored here)."""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import asdict

from aiohttp import web

from actors.conversation import SendMessage
from handlers.envelope import ok
from handlers.keys import CHAT_ROUTER, CONVERSATIONS, WHATSAPP_GRAPH, WHATSAPP_SETUP
from handlers.openapi import RawResponse, operation
from handlers.records import path_id
from handlers.schemas.chat import MessageResponse
from handlers.schemas.common import IdPath
from handlers.schemas.whatsapp import TemplateSendRequest
from handlers.security import authenticate
from handlers.validation import parse_body
from mitra.errors import Forbidden, NotFound, Unavailable
from mitra.whatsapp.graph import GraphError

routes = web.RouteTableDef()
TAGS = ("whatsapp",)


@routes.post("/api/v1/whatsapp/messages")
@operation(
    "Send a customer an approved WhatsApp template",
    description="Agents, to their customers: stored in the customer's conversation and sent "
    "through Meta, also outside the 24-hour window where free-form messages are refused.",
    tags=TAGS,
    body=TemplateSendRequest,
    response=MessageResponse,
    status=201,
    errors=(403, 404),
)
async def send_template(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    if not principal.role.is_staff:
        raise Forbidden("only the agency's staff send templates")
    body = await parse_body(request, TemplateSendRequest)
    summary, _ = await request.app[CONVERSATIONS].open_with_customer(principal, body.customer_id)
    text = f"[template {body.template}] " + " | ".join(body.parameters)
    stored = await request.app[CHAT_ROUTER].send(
        principal.tenant_id,
        summary.id,
        SendMessage(
            principal.user_id,
            body.client_msg_id or f"tpl-{uuid.uuid4().hex}",
            text.strip(),
            "whatsapp",
            "outbound",
            meta={
                "template": {
                    "name": body.template,
                    "language": body.language,
                    "parameters": body.parameters,
                }
            },
        ),
    )
    return ok(MessageResponse.model_validate(asdict(stored)), message="accepted", status=201)


@routes.get("/api/v1/messages/{id}/media")
@operation(
    "A customer's WhatsApp media, streamed from Meta",
    description="Members of the message's conversation; the file passes through, never stored.",
    tags=TAGS,
    path=IdPath,
    raw=RawResponse("application/octet-stream", {"type": "string", "format": "binary"}),
    errors=(404,),
)
async def message_media(request: web.Request) -> web.StreamResponse:
    principal = await authenticate(request)
    message = await request.app[CONVERSATIONS].message_for_member(
        principal, path_id(request, "message")
    )
    media = (message.meta or {}).get("media")
    number = await request.app[WHATSAPP_SETUP].number(principal.tenant_id)
    if not isinstance(media, dict) or not media.get("id") or number is None:
        raise NotFound("this message has no media")
    graph = request.app[WHATSAPP_GRAPH]
    try:
        info = await graph.media(str(media["id"]), number.access_token)
    except ValueError:
        raise NotFound("this message has no media Meta would know") from None
    except GraphError as exc:
        # Meta keeps media for a while only; an expired id is as gone as a deleted one.
        if exc.status == 404 or exc.code == 100:
            raise NotFound("Meta no longer has this media") from None
        raise Unavailable("WhatsApp media cannot be fetched right now") from None
    response = web.StreamResponse(
        headers={
            "Content-Type": info.mime_type or "application/octet-stream",
            "Cache-Control": "private, no-store",
        }
    )
    if info.file_size:
        response.content_length = info.file_size
    await response.prepare(request)
    async with contextlib.aclosing(graph.stream_media(info, number.access_token)) as chunks:
        async for chunk in chunks:
            await response.write(chunk)
    await response.write_eof()
    return response
