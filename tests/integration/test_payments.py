"""Premium payments end to end against local Razorpay and Stripe servers, through the official
SDKs: orders, verified webhooks applied once and forward only, crediting the policy exactly once,
links in the chat, refunds and reconciliation."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from functools import partial
from typing import Any

import pytest
from sqlalchemy import update

from actors.payment_saga import Resume
from handlers.keys import DATABASE, PAYMENT_SAGAS, PAYMENTS
from mitra.cli import build_parser
from mitra.db import Scope, utcnow
from mitra.models import Payment, Role
from mitra.payments import cli as payments_cli
from mitra.settings import Settings
from tests.conftest import SettingsFactory
from tests.streams.conftest import eventually
from tests.support import razorpay_fake, stripe_fake
from tests.support.api import Api
from tests.support.book import add_customer, add_policy
from tests.support.chat import principal_of
from tests.support.payments import (
    Agency,
    Gateways,
    agency,
    order,
    payment,
    post_raw,
    quarter_after,
    razorpay_captured,
    serve_gateways,
    setup_stripe,
)
from tests.support.ws import ChatClient


@pytest.fixture
async def gateways() -> AsyncIterator[Gateways]:
    async with serve_gateways() as served:
        yield served


@pytest.fixture
def settings(make_settings: SettingsFactory, gateways: Gateways) -> Settings:
    return make_settings(payments={**gateways.settings, "poll_interval_seconds": 3600})


async def policy_of(api: Api, shop: Agency) -> dict[str, Any]:
    _, body = await api.call(
        "GET", f"/api/v1/policies/{shop.policy['id']}", token=shop.agent.access_token, expect=200
    )
    data: dict[str, Any] = body["data"]
    return data


async def reaches(api: Api, shop: Agency, payment_id: str, status: str) -> dict[str, Any]:
    async def there() -> bool:
        return (await payment(api, shop.agent, payment_id)).get("status") == status

    await eventually(there, within=10)
    return await payment(api, shop.agent, payment_id)


def has_status(status: str, frame: dict[str, Any]) -> bool:
    return bool(frame["status"] == status)


async def expire_now(api: Api, shop: Agency, payment_id: str) -> None:
    """The order's expiry moved to the past, as if the customer had let it run out."""
    async with api.app[DATABASE].transaction(Scope.tenant(shop.tenant_id)) as session:
        await session.execute(
            update(Payment)
            .where(Payment.id == uuid.UUID(payment_id))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )


# ---- Razorpay ----------------------------------------------------------------------------------


async def test_a_razorpay_order_paid_is_credited_once_whatever_the_webhooks_do(
    api: Api, gateways: Gateways
) -> None:
    shop = await agency(api)
    placed = await order(api, shop.holder, shop.policy["id"], "razorpay")
    assert placed["amount"] == 245050  # paise, from the premium's Decimal
    assert placed["currency"] == "INR"
    assert placed["key_id"] == razorpay_fake.KEY_ID
    rz_order = gateways.razorpay.orders[placed["order_id"]]
    assert rz_order["receipt"] == placed["payment_id"]
    assert rz_order["notes"]["policy_id"] == shop.policy["id"]
    assert rz_order["notes"]["tenant_id"] == str(shop.tenant_id)

    paid = gateways.razorpay.pay(placed["order_id"])
    captured = razorpay_captured(paid, rz_order)
    order_paid = razorpay_captured(paid, rz_order, "order.paid")
    headers = razorpay_fake.signed_headers(captured, event_id="evt_captured_1")
    # A late `failed` for an earlier attempt arrives after the capture: it must change nothing.
    failed_attempt = {**paid, "id": "pay_failedattempt1", "status": "failed"}
    failed = razorpay_fake.webhook_body("payment.failed", payment=failed_attempt)
    webhook = shop.webhook("razorpay")
    assert (await post_raw(api, webhook, captured, headers))[0] == 200
    status, body = await post_raw(api, webhook, captured, headers)  # redelivered
    assert (status, body["data"]["outcome"]) == (200, "duplicate")
    await post_raw(api, webhook, order_paid, razorpay_fake.signed_headers(order_paid))
    await post_raw(api, webhook, failed, razorpay_fake.signed_headers(failed))

    done = await reaches(api, shop, placed["payment_id"], "receipt_sent")
    steps = [s["step"] for s in done["steps"]]
    assert steps.count("captured") == 1
    assert steps.count("policy_credited") == 1
    assert "failed" not in steps
    assert done["gateway_payment_id"] == paid["id"]
    policy = await policy_of(api, shop)
    assert policy["next_due_date"] == quarter_after(shop.policy["next_due_date"])
    assert done["next_due_date"] == policy["next_due_date"]
    # Every event applied: nothing more happens to the policy afterwards.
    await asyncio.sleep(0.2)
    assert (await policy_of(api, shop))["next_due_date"] == policy["next_due_date"]
    await api.app[PAYMENT_SAGAS].poll_once()  # also refreshes the sagas-by-status gauge
    metrics = await (await api.client.get("/metrics")).text()
    assert 'mitra_payment_webhooks_total{gateway="razorpay",outcome="duplicate"} 1' in metrics
    assert 'mitra_payment_sagas{status="receipt_sent"} 1' in metrics
    assert 'mitra_payment_gateway_seconds_count{gateway="razorpay",operation="place"} 1' in metrics


async def test_forged_stale_and_unsigned_webhooks_are_refused_and_nothing_is_kept(
    api: Api, gateways: Gateways
) -> None:
    shop = await agency(api)
    placed = await order(api, shop.holder, shop.policy["id"], "razorpay")
    paid = gateways.razorpay.pay(placed["order_id"])
    body = razorpay_captured(paid, gateways.razorpay.orders[placed["order_id"]])
    forged = razorpay_fake.signed_headers(body, secret="not-the-secret-at-all")
    status, answer = await post_raw(api, shop.webhook("razorpay"), body, forged)
    assert status == 400
    assert answer["success"] is False
    unsigned = {"Content-Type": "application/json", "x-razorpay-event-id": "evt_x"}
    assert (await post_raw(api, shop.webhook("razorpay"), body, unsigned))[0] == 400
    # Stripe: a valid signature more than 300 s old, and one over another body.
    obj = {"id": "pi_x", "object": "payment_intent", "amount": 1, "currency": "inr"}
    event = stripe_fake.event_body("payment_intent.succeeded", obj)
    stale = stripe_fake.signed_headers(event, at=int(time.time()) - 301)
    assert (await post_raw(api, shop.webhook("stripe"), event, stale))[0] == 400
    other = stripe_fake.signed_headers(event + b" ")
    assert (await post_raw(api, shop.webhook("stripe"), event, other))[0] == 400
    # A signature header outside ASCII is a forgery too (the SDKs' compare_digest raised a
    # TypeError on it, answered 500), for both gateways.
    odd = {**razorpay_fake.signed_headers(body), "X-Razorpay-Signature": "é" * 64}
    assert (await post_raw(api, shop.webhook("razorpay"), body, odd))[0] == 400
    odd = {**stripe_fake.signed_headers(event), "Stripe-Signature": f"t={int(time.time())},v1=ü"}
    assert (await post_raw(api, shop.webhook("stripe"), event, odd))[0] == 400
    await asyncio.sleep(0.2)
    shown = await payment(api, shop.agent, placed["payment_id"])
    assert shown["status"] == "order_placed"
    assert [s["step"] for s in shown["steps"]] == ["created", "order_requested", "order_placed"]


async def test_an_amount_that_differs_from_the_order_is_flagged_not_credited(
    api: Api, gateways: Gateways
) -> None:
    shop = await agency(api)
    placed = await order(api, shop.holder, shop.policy["id"], "razorpay")
    paid = gateways.razorpay.pay(placed["order_id"], amount=100)
    body = razorpay_captured(paid, gateways.razorpay.orders[placed["order_id"]])
    await post_raw(api, shop.webhook("razorpay"), body, razorpay_fake.signed_headers(body))
    flagged = await reaches(api, shop, placed["payment_id"], "flagged")
    assert "100" in flagged["flag"]
    assert "245050" in flagged["flag"]
    assert (await policy_of(api, shop))["next_due_date"] == shop.policy["next_due_date"]
    # What was taken can be given back, and no more than that.
    _, refunded = await api.call(
        "POST", f"/api/v1/payments/{placed['payment_id']}/refunds",
        token=shop.admin.access_token, json={"reason": "wrong amount"}, expect=201,
    )  # fmt: skip
    assert refunded["data"]["amount"] == "1.00"
    assert [r["amount"] for r in gateways.razorpay.refunds.values()] == [100]


async def test_the_checkout_callback_is_verified_with_the_key_secret(
    api: Api, gateways: Gateways
) -> None:
    shop = await agency(api)
    placed = await order(api, shop.holder, shop.policy["id"], "razorpay")
    paid = gateways.razorpay.pay(placed["order_id"], status="authorized")
    message = f"{placed['order_id']}|{paid['id']}".encode()
    good = hmac.new(razorpay_fake.KEY_SECRET.encode(), message, hashlib.sha256).hexdigest()
    callback = {"razorpay_order_id": placed["order_id"], "razorpay_payment_id": paid["id"]}
    status, body = await api.call(
        "POST", "/api/v1/payments/verify", token=shop.holder.access_token,
        json={**callback, "razorpay_signature": "0" * 64},
    )  # fmt: skip
    assert status == 422
    assert body["errors"][0]["field"] == "razorpay_signature"
    status, body = await api.call(
        "POST", "/api/v1/payments/verify", token=shop.holder.access_token,
        json={**callback, "razorpay_signature": "ü" * 64},
    )  # fmt: skip
    assert status == 422  # refused as a forged one, not a 500
    assert body["errors"][0]["field"] == "razorpay_signature"
    _, body = await api.call(
        "POST", "/api/v1/payments/verify", token=shop.holder.access_token,
        json={**callback, "razorpay_signature": good}, expect=200,
    )  # fmt: skip
    assert body["data"]["status"] == "authorised"
    # Authorised is not paid: the policy waits for the capture.
    assert (await policy_of(api, shop))["next_due_date"] == shop.policy["next_due_date"]


async def test_the_same_idempotency_key_answers_the_same_order(
    api: Api, gateways: Gateways
) -> None:
    shop = await agency(api)
    first = await order(api, shop.holder, shop.policy["id"], "razorpay", key="retry-1")
    again = await order(api, shop.holder, shop.policy["id"], "razorpay", key="retry-1")
    assert again == first
    assert len(gateways.razorpay.orders) == 1


async def test_another_tenants_payment_is_not_found_and_only_its_people_pay(api: Api) -> None:
    shop = await agency(api)
    placed = await order(api, shop.agent, shop.policy["id"], "razorpay")
    elsewhere = await agency(api)
    for who in (elsewhere.admin, elsewhere.agent, elsewhere.holder):
        status, _ = await api.call(
            "GET", f"/api/v1/payments/{placed['payment_id']}", token=who.access_token
        )
        assert status == 404
    status, _ = await api.call(
        "POST", "/api/v1/payments/orders", token=elsewhere.holder.access_token,
        json={"policy_id": shop.policy["id"], "gateway": "razorpay"},
    )  # fmt: skip
    assert status == 404
    _, listed = await api.call("GET", "/api/v1/payments", token=elsewhere.admin.access_token)
    assert listed["data"]["items"] == []
    _, mine = await api.call("GET", "/api/v1/payments", token=shop.holder.access_token)
    assert [p["id"] for p in mine["data"]["items"]] == [placed["payment_id"]]


# ---- Stripe ------------------------------------------------------------------------------------


async def test_a_stripe_payment_intent_succeeds_and_reordered_events_change_nothing(
    api: Api, gateways: Gateways
) -> None:
    shop = await agency(api)
    socket = await ChatClient.connect(api.client, shop.holder.access_token)
    placed = await order(api, shop.holder, shop.policy["id"], "stripe")
    intent = gateways.stripe.intents[placed["order_id"]]
    assert placed["client_secret"] == intent["client_secret"]
    assert intent["amount"] == 245050
    assert intent["currency"] == "inr"
    assert intent["metadata"]["payment_id"] == placed["payment_id"]
    succeeded = stripe_fake.event_body(
        "payment_intent.succeeded", gateways.stripe.succeed(intent["id"])
    )
    late_failure = stripe_fake.event_body(
        "payment_intent.payment_failed", {**intent, "status": "requires_payment_method"}
    )
    webhook = shop.webhook("stripe")
    assert (await post_raw(api, webhook, succeeded, stripe_fake.signed_headers(succeeded)))[
        0
    ] == 200
    await post_raw(api, webhook, late_failure, stripe_fake.signed_headers(late_failure))
    await post_raw(api, webhook, succeeded, stripe_fake.signed_headers(succeeded))
    done = await reaches(api, shop, placed["payment_id"], "receipt_sent")
    steps = [s["step"] for s in done["steps"]]
    assert steps.count("policy_credited") == 1
    assert "failed" not in steps
    assert (await policy_of(api, shop))["next_due_date"] == quarter_after(
        shop.policy["next_due_date"]
    )
    # The policyholder's app saw the saga move, step by step.
    for status in ("order_placed", "captured", "policy_credited", "receipt_sent"):
        frame = await socket.expect("payment.status", partial(has_status, status), within=5)
        assert frame["payment_id"] == placed["payment_id"]
    await socket.close()


async def test_a_missed_webhook_is_found_by_polling_the_gateway(
    api: Api, gateways: Gateways
) -> None:
    shop = await agency(api)
    placed = await order(api, shop.holder, shop.policy["id"], "stripe")
    gateways.stripe.succeed(placed["order_id"])  # paid, but the webhook never comes
    sagas = api.app[PAYMENT_SAGAS]
    sagas._settings = sagas._settings.model_copy(update={"poll_after_seconds": 0.001})
    await asyncio.sleep(0.01)
    assert await sagas.poll_once() >= 1
    done = await reaches(api, shop, placed["payment_id"], "receipt_sent")
    assert "polled" in [s["step"] for s in done["steps"]]


@pytest.mark.parametrize("gateway", ["stripe", "razorpay"])
async def test_an_unpaid_link_expires_is_cancelled_and_the_customer_told(
    api: Api, gateways: Gateways, gateway: str
) -> None:
    shop = await agency(api)
    _, body = await api.call(
        "POST", "/api/v1/payments/links", token=shop.agent.access_token,
        json={"policy_id": shop.policy["id"], "gateway": gateway}, expect=201,
    )  # fmt: skip
    link = body["data"]
    await expire_now(api, shop, link["payment_id"])
    await api.app[PAYMENT_SAGAS].poll_once()
    done = await reaches(api, shop, link["payment_id"], "compensated")
    if gateway == "stripe":
        assert link["url"].startswith("https://checkout.stripe.com/")
        assert gateways.stripe.sessions[link["link_id"]]["status"] == "expired"
    else:
        assert link["url"].startswith("https://rzp.io/")
        assert gateways.razorpay.links[link["link_id"]]["status"] == "cancelled"
    assert [s["step"] for s in done["steps"]][-2:] == ["expired", "compensated"]
    told = [m["body"] for m in await conversation_messages(api, shop)]
    assert any("was not completed in time" in body for body in told), told


# ---- links in the chat -------------------------------------------------------------------------


async def conversation_messages(api: Api, shop: Agency) -> list[dict[str, Any]]:
    _, opened = await api.call(
        "POST", "/api/v1/conversations", token=shop.holder.access_token, json={},
    )  # fmt: skip
    cid = opened["data"]["id"]
    _, body = await api.call(
        "GET", f"/api/v1/conversations/{cid}/messages", token=shop.holder.access_token, expect=200
    )
    messages: list[dict[str, Any]] = body["data"]
    return messages


async def link_in_chat(api: Api, shop: Agency, gateway: str) -> dict[str, Any]:
    """The agent makes a payment link for the policy and sends it in the customer's chat."""
    _, body = await api.call(
        "POST", "/api/v1/payments/links", token=shop.agent.access_token,
        json={"policy_id": shop.policy["id"], "gateway": gateway, "send_to_conversation": True},
        expect=201,
    )  # fmt: skip
    link: dict[str, Any] = body["data"]
    return link


async def test_a_link_sent_in_the_chat_and_paid_credits_the_policy_with_a_receipt(
    api: Api, gateways: Gateways
) -> None:
    shop = await agency(api)
    link = await link_in_chat(api, shop, "razorpay")
    assert link["sent_to_conversation"] is True
    made = gateways.razorpay.links[link["link_id"]]
    assert made["amount"] == 245050
    assert made["reference_id"] == link["payment_id"]
    messages = await conversation_messages(api, shop)
    assert [m["body"] for m in messages if made["short_url"] in m["body"]], messages
    assert messages[-1]["sender_id"] == shop.agent.user_id

    paid_link, paid_order, paid = gateways.razorpay.pay_link(link["link_id"])
    event = razorpay_fake.webhook_body(
        "payment_link.paid", payment_link=paid_link, order=paid_order, payment=paid
    )
    captured = razorpay_fake.webhook_body("payment.captured", payment=paid)
    for raw in (event, captured):  # Razorpay sends both for a paid link
        await post_raw(api, shop.webhook("razorpay"), raw, razorpay_fake.signed_headers(raw))
    await reaches(api, shop, link["payment_id"], "receipt_sent")
    bodies = [m["body"] for m in await conversation_messages(api, shop)]
    receipts = [b for b in bodies if b.startswith("Payment received")]
    assert len(receipts) == 1
    assert paid["id"] in receipts[0]
    assert (await policy_of(api, shop))["next_due_date"] == quarter_after(
        shop.policy["next_due_date"]
    )


async def test_a_lapsed_policy_paid_is_reinstated_through_the_lifecycle(
    api: Api, gateways: Gateways
) -> None:
    shop = await agency(api)
    await api.call(
        "PATCH", f"/api/v1/policies/{shop.policy['id']}", token=shop.agent.access_token,
        json={"status": "grace"}, expect=200,
    )  # fmt: skip
    placed = await order(api, shop.holder, shop.policy["id"], "stripe")
    succeeded = stripe_fake.event_body(
        "payment_intent.succeeded", gateways.stripe.succeed(placed["order_id"])
    )
    await post_raw(api, shop.webhook("stripe"), succeeded, stripe_fake.signed_headers(succeeded))
    done = await reaches(api, shop, placed["payment_id"], "receipt_sent")
    credited = next(s for s in done["steps"] if s["step"] == "policy_credited")
    assert credited["detail"]["status_from"] == "grace"
    assert (await policy_of(api, shop))["status"] == "active"


# ---- refunds -----------------------------------------------------------------------------------


async def paid_order(api: Api, gateways: Gateways, shop: Agency, gateway: str) -> dict[str, Any]:
    placed = await order(api, shop.holder, shop.policy["id"], gateway)
    if gateway == "razorpay":
        paid = gateways.razorpay.pay(placed["order_id"])
        raw = razorpay_fake.webhook_body("payment.captured", payment=paid)
        headers = razorpay_fake.signed_headers(raw)
    else:
        raw = stripe_fake.event_body(
            "payment_intent.succeeded", gateways.stripe.succeed(placed["order_id"])
        )
        headers = stripe_fake.signed_headers(raw)
    await post_raw(api, shop.webhook(gateway), raw, headers)
    return await reaches(api, shop, placed["payment_id"], "receipt_sent")


async def test_concurrent_refunds_never_exceed_what_was_captured(
    api: Api, gateways: Gateways
) -> None:
    shop = await agency(api)
    paid = await paid_order(api, gateways, shop, "razorpay")
    path = f"/api/v1/payments/{paid['id']}/refunds"
    status, _ = await api.call(
        "POST", path, token=shop.agent.access_token, json={"amount": "1.00", "reason": "x"}
    )
    assert status == 403
    attempts = [
        api.call("POST", path, token=shop.admin.access_token,
                 json={"amount": "1000.00", "reason": f"overpaid {n}"})
        for n in range(3)
    ]  # fmt: skip
    results = await asyncio.gather(*attempts)
    statuses = sorted(status for status, _ in results)
    assert statuses == [201, 201, 422]  # 2450.50 holds two refunds of 1000.00, not three
    refused = next(body for status, body in results if status == 422)
    assert refused["errors"][0]["field"] == "amount"
    assert len(gateways.razorpay.refunds) == 2
    shown = await payment(api, shop.admin, paid["id"])
    assert shown["refunded_amount"] == "2000.00"
    # The refund webhook settles one of them.
    refund = next(iter(gateways.razorpay.refunds.values()))
    raw = razorpay_fake.webhook_body(
        "refund.processed", refund={**refund, "status": "processed"}, payment=paid_payment(gateways)
    )
    await post_raw(api, shop.webhook("razorpay"), raw, razorpay_fake.signed_headers(raw))

    async def settled() -> bool:
        refunds = (await payment(api, shop.admin, paid["id"]))["refunds"]
        return sorted(r["status"] for r in refunds) == ["pending", "processed"]

    await eventually(settled, within=10)


def paid_payment(gateways: Gateways) -> dict[str, Any]:
    return next(iter(gateways.razorpay.payments.values()))


async def test_a_stripe_refund_is_idempotent_toward_the_gateway(
    api: Api, gateways: Gateways
) -> None:
    shop = await agency(api)
    paid = await paid_order(api, gateways, shop, "stripe")
    _, body = await api.call(
        "POST", f"/api/v1/payments/{paid['id']}/refunds", token=shop.admin.access_token,
        json={"reason": "cancelled the policy"}, expect=201,
    )  # fmt: skip
    assert body["data"]["amount"] == "2450.50"
    (refund,) = gateways.stripe.refunds.values()
    assert refund["amount"] == 245050
    assert refund["payment_intent"] == paid["gateway_payment_id"]
    status, again = await api.call(
        "POST", f"/api/v1/payments/{paid['id']}/refunds", token=shop.admin.access_token,
        json={"reason": "twice"},
    )  # fmt: skip
    assert status == 409, again
    charge = {
        "id": "ch_x", "object": "charge", "amount": 245050, "amount_refunded": 245050,
        "currency": "inr", "payment_intent": paid["gateway_payment_id"], "refunded": True,
        "metadata": {}, "refunds": {"object": "list", "data": [refund]},
    }  # fmt: skip
    raw = stripe_fake.event_body("charge.refunded", charge)
    await post_raw(api, shop.webhook("stripe"), raw, stripe_fake.signed_headers(raw))

    async def processed() -> bool:
        refunds = (await payment(api, shop.admin, paid["id"]))["refunds"]
        return [r["status"] for r in refunds] == ["processed"]

    await eventually(processed, within=10)

    # The dashboard shows what was captured and refunded, by gateway.
    async def counted() -> dict[str, Any]:
        _, board = await api.call(
            "GET", "/api/v1/analytics/dashboard", token=shop.admin.access_token, expect=200
        )
        breakdown: dict[str, Any] = board["data"]["breakdown"]
        return breakdown

    async def both() -> bool:
        breakdown = await counted()
        return "stripe/INR" in breakdown.get("payments_refunded", {})

    await eventually(both, within=10)
    breakdown = await counted()
    assert breakdown["payments_captured"]["stripe/INR"]["amount"] == "2450.50"
    assert breakdown["payments_refunded"]["stripe/INR"]["amount"] == "2450.50"


# ---- reconciliation ----------------------------------------------------------------------------


async def test_reconciliation_finds_planted_mismatches_on_both_sides(
    api: Api, gateways: Gateways, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    shop = await agency(api)
    good = await paid_order(api, gateways, shop, "razorpay")
    # Paid at the gateway, but the webhook never reached us.
    unheard = await order(api, shop.holder, shop.policy["id"], "razorpay")
    gateways.razorpay.pay(unheard["order_id"])
    # Captured at the gateway with nothing here at all (someone else's order, same account).
    stranger = gateways.razorpay._order(9900, "INR", "elsewhere", [])
    gateways.razorpay.pay(stranger["id"])
    # Captured here but the gateway no longer lists it (planted by removing its record).
    gone = await paid_order(api, gateways, shop, "razorpay")
    del gateways.razorpay.payments[gone["gateway_payment_id"]]
    window = {
        "from": (utcnow() - timedelta(hours=1)).isoformat(),
        "to": (utcnow() + timedelta(minutes=1)).isoformat(),
        "gateway": "razorpay",
    }
    status, _ = await api.call(
        "POST", "/api/v1/payments/reconcile", token=shop.agent.access_token, json=window
    )
    assert status == 403
    _, body = await api.call(
        "POST", "/api/v1/payments/reconcile", token=shop.admin.access_token, json=window,
        expect=200,
    )  # fmt: skip
    report = body["data"]
    assert [r["payment_id"] for r in report["matched"]] == [good["id"]]
    assert [r["payment_id"] for r in report["mismatched"]] == [unheard["payment_id"]]
    assert "captured" in report["mismatched"][0]["problem"]
    assert [r["payment_id"] for r in report["missing_at_gateway"]] == [gone["id"]]
    assert [r["theirs"]["amount_minor"] for r in report["missing_here"]] == [9900]
    # Nothing was repaired.
    assert (await payment(api, shop.admin, unheard["payment_id"]))["status"] == "order_placed"
    # `mitra payments reconcile` reports the same, and exits 3 for a report with problems.
    args = build_parser().parse_args(
        ["payments", "reconcile", "--tenant", shop.admin.tenant_slug, "--gateway", "razorpay",
         "--from", window["from"], "--to", window["to"]]
    )  # fmt: skip
    capsys.readouterr()
    assert await payments_cli.reconcile(api.app[DATABASE], settings, args) == 3
    printed = json.loads(capsys.readouterr().out)
    assert [r["payment_id"] for r in printed["missing_at_gateway"]] == [gone["id"]]
    assert [r["payment_id"] for r in printed["mismatched"]] == [unheard["payment_id"]]


# ---- integrations ------------------------------------------------------------------------------


async def test_gateway_secrets_are_shown_masked_and_only_to_admins(api: Api) -> None:
    shop = await agency(api)
    response = await api.client.get("/api/v1/integrations/razorpay", headers=shop.admin.headers)
    text = await response.text()
    assert response.status == 200
    assert razorpay_fake.KEY_SECRET not in text
    assert razorpay_fake.WEBHOOK_SECRET not in text
    data = (await response.json())["data"]
    assert data["key_id"] == razorpay_fake.KEY_ID
    assert data["key_secret"] == "…" + razorpay_fake.KEY_SECRET[-4:]
    assert data["webhook_path"] == shop.webhook("razorpay")
    response = await api.client.get("/api/v1/integrations/stripe", headers=shop.admin.headers)
    assert stripe_fake.SECRET_KEY not in await response.text()
    status, _ = await api.call("GET", "/api/v1/integrations/stripe", token=shop.agent.access_token)
    assert status == 403


async def test_the_gateway_left_out_is_the_one_the_agency_set_up_and_none_writes_nothing(
    api: Api, gateways: Gateways
) -> None:
    admin = await api.tenant()
    agent = await api.user(admin, Role.SENIOR_AGENT)
    customer = await add_customer(api, agent)
    policy = await add_policy(api, agent, customer, premium_amount="1200.00")
    link = {"policy_id": policy["id"], "send_to_conversation": False}
    # No gateway yet: refused naming the field, and no payment left behind half-made.
    for asked in ({}, {"gateway": "razorpay"}):
        status, body = await api.call(
            "POST", "/api/v1/payments/links", token=agent.access_token, json={**link, **asked}
        )
        assert status == 422, asked
        assert body["errors"][0]["field"] == "gateway"
    _, listed = await api.call("GET", "/api/v1/payments", token=admin.access_token, expect=200)
    assert listed["data"]["items"] == []
    # An agency with Stripe only: a link asked for without a gateway is a Stripe Checkout link.
    await setup_stripe(api, admin)
    _, made = await api.call(
        "POST", "/api/v1/payments/links", token=agent.access_token, json=link, expect=201
    )
    assert made["data"]["gateway"] == "stripe"
    assert made["data"]["url"]
    status, body = await api.call(
        "POST",
        "/api/v1/payments/links",
        token=agent.access_token,
        json={**link, "gateway": "razorpay"},
    )
    assert status == 422
    assert body["errors"][0]["field"] == "gateway"


async def test_a_key_secret_that_cannot_travel_in_a_header_is_refused_and_the_old_one_kept(
    api: Api, gateways: Gateways
) -> None:
    # Basic auth is latin-1: a secret outside printable ASCII could never reach Razorpay, and
    # once stored it made every later call (reconcile, refunds) fail with a 503.
    shop = await agency(api)
    for secret in ("sécret-clé-0123", "secret with spaces", "\U0008ad4a" * 9):
        status, body = await api.call(
            "PUT",
            "/api/v1/integrations/razorpay",
            token=shop.admin.access_token,
            json={"key_id": razorpay_fake.KEY_ID, "key_secret": secret},
        )
        assert status == 422, secret
        assert body["errors"][0]["field"] == "key_secret"
    # The stored secret still reaches the gateway: an order is placed, paid and receipted.
    paid = await paid_order(api, gateways, shop, "razorpay")
    assert paid["status"] == "receipt_sent"


async def test_a_refund_a_stop_interrupted_is_asked_again_once_on_resume(
    api: Api, gateways: Gateways
) -> None:
    shop = await agency(api)
    paid = await paid_order(api, gateways, shop, "razorpay")
    admin = await principal_of(api, shop.admin)
    # Set aside, then the instance stopped before asking the gateway.
    await api.app[PAYMENTS].reserve_refund(admin, uuid.UUID(paid["id"]), Decimal("100.00"), "x")
    assert gateways.razorpay.refunds == {}
    sagas = api.app[PAYMENT_SAGAS]
    for _ in range(2):  # a second resume finds nothing open: no second refund
        await sagas.ask(shop.tenant_id, uuid.UUID(paid["id"]), Resume())
    (refund,) = gateways.razorpay.refunds.values()
    assert refund["amount"] == 10000
    shown = await payment(api, shop.admin, paid["id"])
    assert [r["status"] for r in shown["refunds"]] == ["pending"]


async def test_an_order_whose_answer_was_lost_is_found_again_not_made_twice(
    api: Api, gateways: Gateways
) -> None:
    shop = await agency(api)
    holder = await principal_of(api, shop.holder)
    state, _ = await api.app[PAYMENTS].create(
        holder, uuid.UUID(shop.policy["id"]), "razorpay", "order",
        idempotency_key="lost-answer", expires_in=timedelta(minutes=30),
    )  # fmt: skip
    # Razorpay made the order, but its answer never reached the saga (a timeout, a crash).
    made = gateways.razorpay._order(245050, "INR", str(state.id), {"payment_id": str(state.id)})
    again = await order(api, shop.holder, shop.policy["id"], "razorpay", key="lost-answer")
    assert again["order_id"] == made["id"]
    assert len(gateways.razorpay.orders) == 1


async def test_a_refund_whose_answer_an_outage_lost_is_completed_by_the_poller_once(
    api: Api, gateways: Gateways
) -> None:
    shop = await agency(api)
    paid = await paid_order(api, gateways, shop, "razorpay")
    gateways.razorpay.lose_answers = True  # Razorpay refunds, but answers 503
    _, body = await api.call(
        "POST", f"/api/v1/payments/{paid['id']}/refunds", token=shop.admin.access_token,
        json={"amount": "100.00", "reason": "overpaid"}, expect=201,
    )  # fmt: skip
    assert body["data"]["status"] == "requested"
    gateways.razorpay.lose_answers = False
    # Nobody asks again: the poller finds the open refund and asks with the same key.
    sagas = api.app[PAYMENT_SAGAS]
    sagas._settings = sagas._settings.model_copy(update={"poll_after_seconds": 0.001})
    await asyncio.sleep(0.01)
    assert await sagas.poll_once() >= 1

    async def answered() -> bool:
        refunds = (await payment(api, shop.admin, paid["id"]))["refunds"]
        return [r["status"] for r in refunds] == ["pending"]

    await eventually(answered, within=10)
    (refund,) = gateways.razorpay.refunds.values()  # one refund, though asked twice
    assert refund["amount"] == 10000
    shown = await payment(api, shop.admin, paid["id"])
    assert shown["refunds"][0]["gateway_refund_id"] == refund["id"]
    assert shown["refunded_amount"] == "100.00"


async def test_a_premium_captured_for_a_surrendered_policy_is_flagged_once_and_refundable(
    api: Api, gateways: Gateways
) -> None:
    shop = await agency(api)
    placed = await order(api, shop.holder, shop.policy["id"], "razorpay")
    # Surrendered while the customer was at Checkout: the policy takes no more premiums.
    await api.call(
        "PATCH", f"/api/v1/policies/{shop.policy['id']}", token=shop.agent.access_token,
        json={"status": "surrendered"}, expect=200,
    )  # fmt: skip
    paid = gateways.razorpay.pay(placed["order_id"])
    rz_order = gateways.razorpay.orders[placed["order_id"]]
    for raw in (razorpay_captured(paid, rz_order), razorpay_captured(paid, rz_order, "order.paid")):
        await post_raw(api, shop.webhook("razorpay"), raw, razorpay_fake.signed_headers(raw))
    flagged = await reaches(api, shop, placed["payment_id"], "flagged")
    assert "surrendered" in flagged["flag"]
    await asyncio.sleep(0.2)  # both events applied: still flagged, once
    shown = await payment(api, shop.admin, placed["payment_id"])
    assert [s["step"] for s in shown["steps"]].count("flagged") == 1
    assert shown["status"] == "flagged"
    policy = await policy_of(api, shop)
    assert (policy["status"], policy["next_due_date"]) == (
        "surrendered",
        shop.policy["next_due_date"],
    )
    # Staff give the money back.
    _, body = await api.call(
        "POST", f"/api/v1/payments/{placed['payment_id']}/refunds",
        token=shop.admin.access_token, json={"reason": "policy surrendered"}, expect=201,
    )  # fmt: skip
    assert body["data"]["amount"] == "2450.50"
    (refund,) = gateways.razorpay.refunds.values()
    assert (refund["payment_id"], refund["amount"]) == (paid["id"], 245050)


async def test_a_premium_paid_twice_is_credited_once_and_the_second_payment_flagged(
    api: Api, gateways: Gateways
) -> None:
    shop = await agency(api)
    # Two ways to pay the same premium, both taken: the customer's Checkout and a second order.
    first = await order(api, shop.holder, shop.policy["id"], "razorpay", key="checkout")
    second = await order(api, shop.holder, shop.policy["id"], "razorpay", key="again")
    for placed, outcome in ((first, "receipt_sent"), (second, "flagged")):
        paid = gateways.razorpay.pay(placed["order_id"])
        raw = razorpay_captured(paid, gateways.razorpay.orders[placed["order_id"]])
        await post_raw(api, shop.webhook("razorpay"), raw, razorpay_fake.signed_headers(raw))
        settled = await reaches(api, shop, placed["payment_id"], outcome)
    flagged = settled
    assert "already paid" in flagged["flag"]
    # The due date moved on by one premium, not two.
    policy = await policy_of(api, shop)
    assert policy["next_due_date"] == quarter_after(shop.policy["next_due_date"])
    # The second payment's money can be given back.
    await api.call(
        "POST", f"/api/v1/payments/{second['payment_id']}/refunds",
        token=shop.admin.access_token, json={"reason": "paid twice"}, expect=201,
    )  # fmt: skip


async def test_a_link_message_a_stop_left_unsent_goes_out_on_resume_once(
    api: Api, gateways: Gateways
) -> None:
    shop = await agency(api)
    agent = await principal_of(api, shop.agent)
    store = api.app[PAYMENTS]
    state, _ = await store.create(
        agent, uuid.UUID(shop.policy["id"]), "razorpay", "link", idempotency_key="stopped",
        expires_in=timedelta(minutes=30), send_to_conversation=True,
    )  # fmt: skip
    # The saga placed the link and recorded it, then the instance stopped before sending it.
    url = "https://rzp.io/i/stopped01"
    await store.advance(
        shop.tenant_id, state.id, "order_placed", {"gateway_order_id": "plink_stopped01"},
        gateway_order_id="plink_stopped01", checkout={"send_to_conversation": True, "url": url},
    )  # fmt: skip
    assert not [m for m in await conversation_messages(api, shop) if url in m["body"]]
    await api.app[PAYMENT_SAGAS].ask(shop.tenant_id, state.id, Resume())
    # The agent's retry of the same request finds it sent: no second message.
    _, body = await api.call(
        "POST", "/api/v1/payments/links", token=shop.agent.access_token,
        json={"policy_id": shop.policy["id"], "gateway": "razorpay", "send_to_conversation": True},
        headers={"Idempotency-Key": "stopped"}, expect=201,
    )  # fmt: skip
    assert body["data"]["url"] == url
    sent = [m for m in await conversation_messages(api, shop) if url in m["body"]]
    assert len(sent) == 1
    assert sent[0]["sender_id"] == shop.agent.user_id
    steps = [s["step"] for s in (await payment(api, shop.agent, str(state.id)))["steps"]]
    assert steps.count("link_sent") == 1
    assert gateways.razorpay.links == {}  # nothing placed twice


async def test_a_stripe_checkout_link_paid_credits_the_policy_once_with_a_receipt(
    api: Api, gateways: Gateways
) -> None:
    shop = await agency(api)
    link = await link_in_chat(api, shop, "stripe")
    made = gateways.stripe.sessions[link["link_id"]]
    assert (made["amount_total"], made["currency"]) == (245050, "inr")
    assert made["client_reference_id"] == link["payment_id"]
    assert [m for m in await conversation_messages(api, shop) if link["url"] in m["body"]]

    session = gateways.stripe.complete_session(link["link_id"])
    intent = gateways.stripe.intents[session["payment_intent"]]
    completed = stripe_fake.event_body(
        "checkout.session.completed",
        {k: v for k, v in session.items() if k != "intent_metadata"},
    )
    succeeded = stripe_fake.event_body("payment_intent.succeeded", intent)
    for raw in (completed, succeeded):  # Stripe sends both for a paid Checkout Session
        await post_raw(api, shop.webhook("stripe"), raw, stripe_fake.signed_headers(raw))
    done = await reaches(api, shop, link["payment_id"], "receipt_sent")
    assert done["gateway_payment_id"] == intent["id"]
    assert [s["step"] for s in done["steps"]].count("policy_credited") == 1
    receipts = [
        m["body"]
        for m in await conversation_messages(api, shop)
        if m["body"].startswith("Payment received")
    ]
    assert len(receipts) == 1
    assert intent["id"] in receipts[0]
    assert (await policy_of(api, shop))["next_due_date"] == quarter_after(
        shop.policy["next_due_date"]
    )
