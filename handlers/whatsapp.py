"""`/api/v1/whatsapp` and media: templates to customers (also outside the 24-hour window), and
customers' media streamed from Meta on demand (never stored here)."""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import asdict
from typing import Any

from aiohttp import web

from actors.conversation import SendMessage
from handlers.envelope import ok
from handlers.keys import (
    CHAT_LIMITS,
    CHAT_ROUTER,
    CONVERSATIONS,
    CUSTOMERS,
    WHATSAPP_GRAPH,
    WHATSAPP_SETUP,
    WHATSAPP_TEMPLATES,
)
from handlers.openapi import RawResponse, operation
from handlers.records import path_id
from handlers.schemas.chat import MessageResponse
from handlers.schemas.common import IdPath
from handlers.schemas.whatsapp import TemplateResponse, WhatsAppSendRequest
from handlers.security import authenticate
from handlers.validation import parse_body
from mitra.auth.principal import Principal
from mitra.errors import Forbidden, InvalidInput, NotFound, Unavailable
from mitra.whatsapp.graph import GraphError
from mitra.whatsapp.outbound import SEND, TEMPLATE, outbound_message
from mitra.whatsapp.outbound import summary as outbound_summary
from mitra.whatsapp.templates import require_account

routes = web.RouteTableDef()
TAGS = ("whatsapp",)


@routes.post("/api/v1/whatsapp/messages")
@operation(
    "Send a customer a template, buttons, a list or media on WhatsApp",
    description="Agents, to their customers: stored in the customer's conversation and sent "
    "through Meta. Only an approved template goes outside the 24-hour window; the other kinds "
    "are refused there with `outside_window`, as free text is.",
    tags=TAGS,
    body=WhatsAppSendRequest,
    response=MessageResponse,
    status=201,
    errors=(403, 404, 429),
)
async def send_whatsapp(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    if not principal.role.is_staff:
        raise Forbidden("only the agency's staff send WhatsApp messages")
    body = await parse_body(request, WhatsAppSendRequest)
    # The sender's budget is the socket's: a user who used it up there does not send here.
    request.app[CHAT_LIMITS].send(principal.user_id)
    if body.template:
        await _check_template(request, principal, body)
    meta = _meta(body)
    customer = await request.app[CUSTOMERS].get(principal, body.customer_id)
    try:
        outbound_message(customer.phone, body.body or "", meta)
    except ValueError as exc:
        field, _, reason = str(exc).partition(": ")
        # The request names the body's parameters `parameters`.
        field = field.replace("body_parameters", "parameters", 1)
        raise InvalidInput.for_field(field, reason or str(exc)) from None
    summary, _ = await request.app[CONVERSATIONS].open_with_customer(principal, body.customer_id)
    stored = await request.app[CHAT_ROUTER].send(
        principal.tenant_id,
        summary.id,
        SendMessage(
            principal.user_id,
            body.client_msg_id or f"wa-{uuid.uuid4().hex}",
            outbound_summary(meta),
            "whatsapp",
            "outbound",
            meta=meta,
        ),
    )
    return ok(MessageResponse.model_validate(asdict(stored)), message="accepted", status=201)


def _meta(body: WhatsAppSendRequest) -> dict[str, Any]:
    if body.template:
        template: dict[str, Any] = {
            "name": body.template,
            "language": body.language,
            "parameters": body.parameters,
        }
        if body.header_parameters:
            template["header_parameters"] = body.header_parameters
        if body.header_media is not None:
            template["header_media"] = body.header_media.model_dump(exclude_none=True)
        return {TEMPLATE: template}
    if body.buttons:
        spec: dict[str, Any] = {
            "type": "buttons",
            "body": body.body,
            "buttons": [b.model_dump() for b in body.buttons],
        }
    elif body.list_:
        spec = {"type": "list", "body": body.body, **body.list_.model_dump()}
    else:
        assert body.media is not None  # the request model allows nothing else
        spec = {"type": "media", **body.media.model_dump()}
    return {SEND: spec}


async def _check_template(
    request: web.Request, principal: Principal, body: WhatsAppSendRequest
) -> None:
    """Against the last sync, when there is one; without one Meta is the judge."""
    known = await request.app[WHATSAPP_TEMPLATES].listing(principal)
    if not known:
        return
    match = [t for t in known if (t.name, t.language) == (body.template, body.language)]
    if not match:
        raise InvalidInput.for_field("template", "no such template in this language (last sync)")
    if match[0].status != "APPROVED":
        raise InvalidInput.for_field("template", f"Meta has it {match[0].status}, not APPROVED")
    if len(body.parameters) != match[0].body_parameters:
        raise InvalidInput.for_field(
            "parameters", f"the template takes {match[0].body_parameters} body parameters"
        )
    if len(body.header_parameters) != match[0].header_parameters:
        raise InvalidInput.for_field(
            "header_parameters",
            f"the template's header takes {match[0].header_parameters} parameters",
        )


@routes.post("/api/v1/whatsapp/templates/sync")
@operation(
    "Pull the agency's message templates from Meta",
    description="Tenant admins; needs `business_account_id` in the integration.",
    tags=TAGS,
    response=list[TemplateResponse],
    errors=(403, 404, 422, 503),
)
async def sync_templates(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    if not principal.role.is_admin:
        raise Forbidden("only the agency's admins sync its templates")
    number = await request.app[WHATSAPP_SETUP].number(principal.tenant_id)
    if number is None:
        raise NotFound("no whatsapp integration is set up")
    try:
        templates = await request.app[WHATSAPP_GRAPH].list_templates(
            require_account(number), number.access_token
        )
    except GraphError as exc:
        raise Unavailable(f"Meta did not list the templates ({exc.code or exc.status})") from None
    rows = await request.app[WHATSAPP_TEMPLATES].replace(principal, number, templates)
    return ok([TemplateResponse.model_validate(row) for row in rows], message="synced")


@routes.get("/api/v1/whatsapp/templates")
@operation(
    "The agency's message templates, as last synced",
    tags=TAGS,
    response=list[TemplateResponse],
    errors=(403,),
)
async def list_templates(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    rows = await request.app[WHATSAPP_TEMPLATES].listing(principal)
    return ok([TemplateResponse.model_validate(row) for row in rows])


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
