"""Gateway webhooks: verified on the raw body with the SDKs' own checks, then read into one
`GatewayEvent` shape. Nothing is parsed before the signature holds."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from typing import Any, Literal

import orjson
import stripe
from razorpay.errors import SignatureVerificationError
from razorpay.utility.utility import Utility

from mitra.payments.gateway import payment_id_in

RAZORPAY_SIGNATURE = "X-Razorpay-Signature"
RAZORPAY_EVENT_ID = "x-razorpay-event-id"
STRIPE_SIGNATURE = "Stripe-Signature"
STRIPE_TOLERANCE_SECONDS = 300

# The SDK's check; webhook verification needs no client (no session, no keys).
_RAZORPAY_UTILITY = Utility()

EventKind = Literal["authorised", "captured", "failed", "refund_processed", "refund_failed"]


class WebhookRefused(Exception):
    """Forged, stale or unreadable: answered 400 and nothing is stored."""


@dataclass(frozen=True)
class GatewayEvent:
    """One gateway event, as the saga applies it (`kind` None: verified but not ours to act on)."""

    provider: str
    event_id: str
    event_type: str
    kind: EventKind | None
    payment_id: uuid.UUID | None = None  # ours, from the notes or metadata we sent
    order_ref: str | None = None  # order_…, plink_…, pi_…, cs_…
    payment_ref: str | None = None  # pay_…, pi_…
    amount_minor: int | None = None
    currency: str | None = None
    refund_ref: str | None = None
    refund_ids: tuple[str, ...] = ()

    def as_payload(self) -> dict[str, Any]:
        data = asdict(self)
        data["payment_id"] = str(self.payment_id) if self.payment_id else None
        data["refund_ids"] = list(self.refund_ids)
        return data

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> GatewayEvent:
        values: dict[str, Any] = {name: data.get(name) for name in cls.__dataclass_fields__}
        values["payment_id"] = uuid.UUID(data["payment_id"]) if data.get("payment_id") else None
        values["refund_ids"] = tuple(data.get("refund_ids") or ())
        return cls(**values)


# ---- Razorpay ----------------------------------------------------------------------------------

_RAZORPAY_KINDS: dict[str, EventKind] = {
    "payment.authorized": "authorised",
    "payment.captured": "captured",
    "payment.failed": "failed",
    "order.paid": "captured",
    "payment_link.paid": "captured",
    "refund.processed": "refund_processed",
    "refund.failed": "refund_failed",
}


def razorpay_event(
    raw: bytes, signature: str | None, event_id: str | None, secret: str
) -> GatewayEvent:
    """Verify with `utility.verify_webhook_signature` over the raw body, then read it."""
    if not signature:
        raise WebhookRefused("no X-Razorpay-Signature")
    if not signature.isascii():
        # hmac.compare_digest raises TypeError on a non-ASCII str inside the SDK; a hex
        # signature is ASCII, so such a header is a forgery like any other.
        raise WebhookRefused("signature check failed")
    try:
        text = raw.decode("utf-8")
        _RAZORPAY_UTILITY.verify_webhook_signature(text, signature, secret)
    except (UnicodeDecodeError, SignatureVerificationError):
        raise WebhookRefused("signature check failed") from None
    if not event_id:
        raise WebhookRefused("no x-razorpay-event-id")
    body = _json(raw)
    event_type = str(body.get("event") or "")
    payload = _dict(body.get("payload"))
    kind = _RAZORPAY_KINDS.get(event_type)
    payment = _entity(payload, "payment")
    if event_type.startswith("refund."):
        refund = _entity(payload, "refund")
        return GatewayEvent(
            "razorpay", event_id, event_type, kind,
            payment_id=payment_id_in(payment.get("notes")),
            payment_ref=_str(refund.get("payment_id")),
            amount_minor=_int(refund.get("amount")),
            currency=_str(refund.get("currency")),
            refund_ref=_str(refund.get("id")),
        )  # fmt: skip
    link = _entity(payload, "payment_link")
    order = _entity(payload, "order")
    ours = (
        payment_id_in(link.get("notes"))
        or payment_id_in(order.get("notes"))
        or payment_id_in(payment.get("notes"))
    )
    return GatewayEvent(
        "razorpay", event_id, event_type, kind,
        payment_id=ours,
        order_ref=_str(link.get("id")) or _str(payment.get("order_id")) or _str(order.get("id")),
        payment_ref=_str(payment.get("id")),
        amount_minor=_int(payment.get("amount")),
        currency=_str(payment.get("currency")),
    )  # fmt: skip


# ---- Stripe ------------------------------------------------------------------------------------

_STRIPE_KINDS: dict[str, EventKind] = {
    "payment_intent.succeeded": "captured",
    "payment_intent.payment_failed": "failed",
    "checkout.session.completed": "captured",
    "charge.refunded": "refund_processed",
}


def stripe_event(raw: bytes, signature: str | None, secret: str) -> GatewayEvent:
    """Verify with `stripe.Webhook.construct_event` (`t=…,v1=…` over "{t}.{body}", 300 s)."""
    if signature is not None and not signature.isascii():
        # As for Razorpay: the SDK's compare_digest would raise TypeError, not refuse.
        raise WebhookRefused("signature check failed or too old")
    try:
        event = stripe.Webhook.construct_event(
            raw, signature or "", secret, tolerance=STRIPE_TOLERANCE_SECONDS, api_key="unused"
        )
    except stripe.SignatureVerificationError:
        raise WebhookRefused("signature check failed or too old") from None
    except ValueError:
        raise WebhookRefused("unreadable body") from None
    body = _json(raw)  # plain data: the SDK's objects are not what the saga stores
    event_type = str(body.get("type") or "")
    obj = _dict(_dict(body.get("data")).get("object"))
    kind = _STRIPE_KINDS.get(event_type)
    ours = payment_id_in(obj.get("metadata"))
    if event_type == "checkout.session.completed":
        if obj.get("payment_status") != "paid":
            kind = None  # a delayed method: payment_intent.succeeded follows when it is paid
        return GatewayEvent(
            "stripe", str(event.id), event_type, kind,
            payment_id=ours,
            order_ref=_str(obj.get("id")),
            payment_ref=_str(obj.get("payment_intent")),
            amount_minor=_int(obj.get("amount_total")),
            currency=_upper(obj.get("currency")),
        )  # fmt: skip
    if event_type == "charge.refunded":
        refunds = _dict(obj.get("refunds"))
        ids = tuple(
            str(item["id"])
            for item in refunds.get("data") or []
            if isinstance(item, dict) and item.get("id")
        )
        return GatewayEvent(
            "stripe", str(event.id), event_type, kind,
            payment_id=ours,
            payment_ref=_str(obj.get("payment_intent")),
            amount_minor=_int(obj.get("amount_refunded")),  # all refunded so far, not this one
            currency=_upper(obj.get("currency")),
            refund_ids=ids,
        )  # fmt: skip
    received = obj.get("amount_received") if kind == "captured" else obj.get("amount")
    return GatewayEvent(
        "stripe", str(event.id), event_type, kind,
        payment_id=ours,
        order_ref=_str(obj.get("id")),
        payment_ref=_str(obj.get("id")),
        amount_minor=_int(received),
        currency=_upper(obj.get("currency")),
    )  # fmt: skip


# ---- helpers -----------------------------------------------------------------------------------


def _json(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise WebhookRefused("the body is not JSON") from None
    if not isinstance(body, dict):
        raise WebhookRefused("the body is not a JSON object")
    return body


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _entity(payload: dict[str, Any], name: str) -> dict[str, Any]:
    wrapper = payload.get(name)
    entity = wrapper.get("entity") if isinstance(wrapper, dict) else None
    return entity if isinstance(entity, dict) else {}


def _str(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _upper(value: Any) -> str | None:
    return str(value).upper() if value else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
