"""`/api/v1/webhooks/razorpay/{tenant}` and `/api/v1/webhooks/stripe/{tenant}`: the gateways'
signed events, verified with the tenant's webhook secret before anything is parsed.

A verified event is recorded once (by its provider event id) with its `payments.events` outbox
row in the same transaction, and answered at once; the saga applies it behind the stream.
"""

from __future__ import annotations

import logging
import uuid

from aiohttp import web

from handlers.envelope import failure, ok
from handlers.keys import INTEGRATIONS, PAYMENT_METRICS, PAYMENTS, SETTINGS
from handlers.openapi import operation
from mitra.payments.webhooks import (
    RAZORPAY_EVENT_ID,
    RAZORPAY_SIGNATURE,
    STRIPE_SIGNATURE,
    GatewayEvent,
    WebhookRefused,
    razorpay_event,
    stripe_event,
)

log = logging.getLogger("mitra.payments.webhook")
routes = web.RouteTableDef()
TAGS = ("webhooks",)


async def _secret(request: web.Request, provider: str) -> tuple[uuid.UUID, str] | None:
    try:
        tenant_id = uuid.UUID(request.match_info["tenant"])
    except ValueError:
        return None
    credentials = await request.app[INTEGRATIONS].credentials(tenant_id, provider)
    if credentials is None or not credentials.secrets.get("webhook_secret"):
        return None
    return tenant_id, credentials.secrets["webhook_secret"]


async def _receive(request: web.Request, provider: str) -> web.Response:
    metrics = request.app[PAYMENT_METRICS]
    limit = request.app[SETTINGS].payments.webhook_max_bytes
    if request.content_length is not None and request.content_length > limit:
        metrics.webhook(provider, "too_large")
        return failure(413, "webhook body too large")
    raw = await request.read()
    if len(raw) > limit:
        metrics.webhook(provider, "too_large")
        return failure(413, "webhook body too large")
    found = await _secret(request, provider)
    # An unknown tenant answers as a forged signature: the path does not tell who exists.
    if found is None:
        metrics.webhook(provider, "unknown_tenant")
        return failure(400, "signature check failed")
    tenant_id, secret = found
    headers = request.headers
    try:
        event: GatewayEvent = (
            razorpay_event(
                raw, headers.get(RAZORPAY_SIGNATURE), headers.get(RAZORPAY_EVENT_ID), secret
            )
            if provider == "razorpay"
            else stripe_event(raw, headers.get(STRIPE_SIGNATURE), secret)
        )
    except WebhookRefused as exc:
        metrics.webhook(provider, "refused")
        log.warning("%s webhook for tenant %s refused: %s", provider, tenant_id, exc)
        return failure(400, str(exc))
    outcome = await request.app[PAYMENTS].record_webhook(tenant_id, event)
    metrics.webhook(provider, outcome)
    if outcome == "unmatched":
        log.info("%s event %s matches no payment of tenant %s", provider, event.event_id, tenant_id)
    return ok({"event_id": event.event_id, "outcome": outcome})


@routes.post("/api/v1/webhooks/razorpay/{tenant}")
@operation(
    "Razorpay's webhook",
    description="`X-Razorpay-Signature` must be the HMAC-SHA256 of the raw body with the "
    "tenant's webhook secret, and `x-razorpay-event-id` name the event (redeliveries are "
    "recorded once). Forged bodies are refused with 400 and nothing is kept.",
    tags=TAGS,
    auth=False,
    errors=(400, 413),
)
async def razorpay_webhook(request: web.Request) -> web.Response:
    return await _receive(request, "razorpay")


@routes.post("/api/v1/webhooks/stripe/{tenant}")
@operation(
    "Stripe's webhook",
    description="`Stripe-Signature` (`t=…,v1=…`) must sign `{t}.{raw body}` with the "
    "endpoint's secret and be at most 300 s old; events are recorded once by their id. Forged "
    "or stale bodies are refused with 400 and nothing is kept.",
    tags=TAGS,
    auth=False,
    errors=(400, 413),
)
async def stripe_webhook(request: web.Request) -> web.Response:
    return await _receive(request, "stripe")
