"""`/api/v1/webhooks/whatsapp/{tenant}`: Meta's verification handshake and its signed POSTs.

A POST is answered as soon as its items are on `whatsapp.inbound`: the database work happens
behind the stream, so a slow database never makes Meta retry (and redeliver).
"""

from __future__ import annotations

import hmac
import logging
import uuid

from aiohttp import web

from handlers.envelope import failure
from handlers.keys import STREAMS, WHATSAPP_METRICS, WHATSAPP_SETUP
from handlers.openapi import RawResponse, operation
from mitra.errors import FieldError
from mitra.whatsapp.setup import WhatsAppNumber
from mitra.whatsapp.webhook import (
    SIGNATURE_HEADER,
    WebhookUnreadable,
    parse_webhook,
    signature_valid,
)
from streams.envelope import encode_envelope, utc_now
from streams.topics import WHATSAPP_INBOUND

log = logging.getLogger("mitra.whatsapp.webhook")
routes = web.RouteTableDef()
TAGS = ("webhooks",)
PATH = "/api/v1/webhooks/whatsapp/{tenant}"
MESSAGE_EVENT = "whatsapp.message"
STATUS_EVENT = "whatsapp.status"


async def _number(request: web.Request) -> WhatsAppNumber | None:
    """The WhatsApp number of the tenant the path names, if it has one."""
    try:
        tenant_id = uuid.UUID(request.match_info["tenant"])
    except ValueError:
        return None
    return await request.app[WHATSAPP_SETUP].number(tenant_id)


@routes.get(PATH)
@operation(
    "Meta's webhook verification",
    description="Answers `hub.challenge` as plain text when `hub.mode` is `subscribe` and "
    "`hub.verify_token` is the tenant's; 403 otherwise.",
    tags=TAGS,
    auth=False,
    raw=RawResponse("text/plain", {"type": "string"}, "the challenge, echoed"),
    errors=(403,),
)
async def verify(request: web.Request) -> web.Response:
    number = await _number(request)
    query = request.query
    token = query.get("hub.verify_token", "")
    if (
        number is None
        or query.get("hub.mode") != "subscribe"
        or not _same(token, number.verify_token)
        or "hub.challenge" not in query
    ):
        return failure(403, "verification refused")
    return web.Response(text=query["hub.challenge"], content_type="text/plain")


@routes.post(PATH)
@operation(
    "Meta's webhook: customers' messages and statuses",
    description="`X-Hub-Signature-256` must be the HMAC-SHA256 of the raw body with the "
    "tenant's app secret; unsigned or forged bodies are refused with 401 and nothing is kept.",
    tags=TAGS,
    auth=False,
    raw=RawResponse("text/plain", {"type": "string"}, "accepted"),
    errors=(400, 401, 413),
)
async def receive(request: web.Request) -> web.Response:
    metrics = request.app[WHATSAPP_METRICS]
    raw = await request.read()
    number = await _number(request)
    # Unknown tenant and bad signature answer alike: the path does not tell which tenants exist.
    if number is None:
        metrics.webhook("unknown_tenant")
        return failure(401, "signature check failed")
    tenant_id = number.tenant_id
    if not signature_valid(raw, request.headers.get(SIGNATURE_HEADER), number.app_secret):
        metrics.webhook("bad_signature")
        log.warning("WhatsApp webhook for tenant %s with a bad signature", tenant_id)
        return failure(401, "signature check failed")
    try:
        body = parse_webhook(raw)
    except WebhookUnreadable as exc:
        metrics.webhook("unreadable")
        log.warning("signed WhatsApp webhook for tenant %s is unreadable: %s", tenant_id, exc)
        return failure(400, "unreadable webhook body", [FieldError(None, str(exc))])
    for kind in body.malformed:
        metrics.items.inc({"kind": kind, "outcome": "malformed"})
    if body.malformed:
        # The items themselves are not logged: they hold customers' numbers and words.
        log.warning("signed WhatsApp webhook for tenant %s: %d items without their ids skipped",
                    tenant_id, len(body.malformed))  # fmt: skip
    for error in body.errors:
        metrics.meta_errors.inc({"code": str(error.get("code"))})
        log.warning("Meta reported error %s: %s", error.get("code"), error.get("title"))
    records = []
    now = utc_now()
    for item in body.items:
        if item.phone_number_id != number.phone_number_id:
            metrics.items.inc({"kind": item.kind, "outcome": "foreign_number"})
            log.warning(
                "WhatsApp webhook for tenant %s names phone number id %s, not the tenant's",
                tenant_id,
                item.phone_number_id,
            )
            continue
        metrics.items.inc({"kind": item.kind, "outcome": "published"})
        value = encode_envelope(
            id=uuid.uuid4(),
            type=MESSAGE_EVENT if item.kind == "message" else STATUS_EVENT,
            tenant_id=str(number.tenant_id),
            key=item.wa_id,
            occurred_at=now,
            payload=item.as_payload(),
        )
        records.append((WHATSAPP_INBOUND.name, item.wa_id, value))
    if records:
        # Answered only once the broker has them: a 200 means nothing is lost from here on.
        await request.app[STREAMS].publish_batch(records)
    metrics.webhook("accepted")
    return web.Response(text="ok", content_type="text/plain")


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())
