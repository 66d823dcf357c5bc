"""The gateways' webhooks: verified with the SDKs' own checks, then read into one event shape;
checked against real published samples (the shared provider fixtures) and against forgeries."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
import uuid
from pathlib import Path

import pytest

from mitra.payments.webhooks import WebhookRefused, razorpay_event, stripe_event
from tests.support import razorpay_fake, stripe_fake

FIXTURES = Path(os.environ.get("MITRA_PROVIDER_FIXTURES", "/work/shared/fixtures/providers"))
SECRET = "webhook-secret-for-samples"


def razorpay_signature(body: bytes, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def stripe_header(body: bytes, secret: str = SECRET, at: int | None = None) -> str:
    t = int(time.time()) if at is None else at
    return (
        f"t={t},v1={hmac.new(secret.encode(), f'{t}.'.encode() + body, hashlib.sha256).hexdigest()}"
    )


def samples(provider: str) -> list[Path]:
    found = sorted((FIXTURES / provider).glob("*.json"))
    if not found:
        pytest.skip(f"the shared provider samples are not at {FIXTURES / provider}")
    return found


def test_every_published_razorpay_event_is_read_as_the_gateway_meant_it() -> None:
    kinds = {}
    for sample in samples("razorpay"):
        raw = sample.read_bytes()
        body = json.loads(raw)
        if body.get("entity") != "event":
            continue  # API answers, not webhooks
        event = razorpay_event(raw, razorpay_signature(raw), "evt_sample", SECRET)
        kinds[body["event"]] = event.kind
        payload = body["payload"]
        if "refund" in payload:
            refund = payload["refund"]["entity"]
            assert event.refund_ref == refund["id"], sample.name
            assert event.payment_ref == refund["payment_id"], sample.name
            assert event.amount_minor == refund["amount"], sample.name
        else:
            payment = payload["payment"]["entity"]
            assert event.payment_ref == payment["id"], sample.name
            assert event.amount_minor == payment["amount"], sample.name
            assert event.currency == payment["currency"], sample.name
            if "payment_link" in payload:
                assert event.order_ref == payload["payment_link"]["entity"]["id"]
            else:
                assert event.order_ref == payment["order_id"], sample.name
    assert kinds["payment.captured"] == "captured"
    assert kinds["payment.failed"] == "failed"
    assert kinds["order.paid"] == "captured"
    assert kinds["payment_link.paid"] == "captured"
    assert kinds["refund.processed"] == "refund_processed"
    assert kinds["refund.created"] is None  # verified, recorded, not acted on


def test_every_published_stripe_event_is_read_as_the_gateway_meant_it() -> None:
    seen = set()
    for sample in samples("stripe"):
        raw = sample.read_bytes()
        body = json.loads(raw)
        obj = body["data"]["object"]
        event = stripe_event(raw, stripe_header(raw), SECRET)
        seen.add(body["type"])
        assert event.event_id == body["id"]
        assert event.currency == obj["currency"].upper()
        if body["type"] == "checkout.session.completed":
            assert (event.kind, event.order_ref) == ("captured", obj["id"])
            assert event.payment_ref == obj["payment_intent"]
            assert event.amount_minor == obj["amount_total"]
        elif body["type"] == "charge.refunded":
            assert event.kind == "refund_processed"
            assert event.payment_ref == obj["payment_intent"]
            assert event.amount_minor == obj["amount_refunded"]
            assert event.refund_ids == tuple(r["id"] for r in obj["refunds"]["data"])
        elif body["type"] == "payment_intent.succeeded":
            assert (event.kind, event.payment_ref) == ("captured", obj["id"])
            assert event.amount_minor == obj["amount_received"]
        else:
            assert event.kind == "failed"
    assert {"payment_intent.succeeded", "checkout.session.completed", "charge.refunded"} <= seen


def test_our_own_notes_find_the_payment() -> None:
    payment_id = uuid.uuid4()
    payment = {"id": "pay_1", "amount": 100, "currency": "INR", "order_id": "order_1",
               "notes": {"payment_id": str(payment_id)}}  # fmt: skip
    raw = razorpay_fake.webhook_body("payment.captured", payment=payment)
    assert razorpay_event(raw, razorpay_signature(raw), "e", SECRET).payment_id == payment_id
    intent = {"id": "pi_1", "object": "payment_intent", "amount": 100, "amount_received": 100,
              "currency": "inr", "metadata": {"payment_id": str(payment_id)}}  # fmt: skip
    raw = stripe_fake.event_body("payment_intent.succeeded", intent)
    assert stripe_event(raw, stripe_header(raw), SECRET).payment_id == payment_id


def test_forged_altered_stale_and_unnamed_events_are_refused() -> None:
    raw = razorpay_fake.webhook_body("payment.captured", payment={"id": "pay_1"})
    with pytest.raises(WebhookRefused):
        razorpay_event(raw, razorpay_signature(raw, "another"), "e", SECRET)
    with pytest.raises(WebhookRefused):
        razorpay_event(raw + b" ", razorpay_signature(raw), "e", SECRET)
    with pytest.raises(WebhookRefused):
        razorpay_event(raw, None, "e", SECRET)
    with pytest.raises(WebhookRefused):
        razorpay_event(raw, razorpay_signature(raw), None, SECRET)  # no event id to dedupe by
    raw = stripe_fake.event_body("payment_intent.succeeded", {"id": "pi_1"})
    with pytest.raises(WebhookRefused):
        stripe_event(raw, stripe_header(raw, at=int(time.time()) - 301), SECRET)
    with pytest.raises(WebhookRefused):
        stripe_event(raw, stripe_header(raw, "another"), SECRET)
    with pytest.raises(WebhookRefused):
        stripe_event(raw, None, SECRET)
    assert stripe_event(raw, stripe_header(raw, at=int(time.time()) - 299), SECRET).kind
