"""Payments for tests: both gateways' fakes on loopback, a tenant set up with them, and the
webhooks each gateway would send for what a customer did."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import date
from typing import Any

from mitra.models import Role
from tests.support import razorpay_fake, stripe_fake
from tests.support.api import Account, Api
from tests.support.book import add_customer, add_policy
from tests.support.razorpay_fake import RazorpayFake, serve
from tests.support.stripe_fake import StripeFake


@dataclass
class Gateways:
    razorpay: RazorpayFake
    razorpay_url: str
    stripe: StripeFake
    stripe_url: str

    @property
    def settings(self) -> dict[str, Any]:
        return {"razorpay_base_url": self.razorpay_url, "stripe_base_url": self.stripe_url}


@asynccontextmanager
async def serve_gateways() -> AsyncIterator[Gateways]:
    razorpay, stripe = RazorpayFake(), StripeFake()
    async with serve(razorpay.app()) as razorpay_url, serve(stripe.app()) as stripe_url:
        yield Gateways(razorpay, razorpay_url, stripe, stripe_url)


@contextmanager
def gateways_in_thread() -> Iterator[Gateways]:
    """Both fakes on a loop of their own thread: for tests whose server is another process and
    whose own code is not async (the contract fuzzing)."""
    loop = asyncio.new_event_loop()
    ready: concurrent.futures.Future[Gateways] = concurrent.futures.Future()
    stop = asyncio.Event()

    async def run() -> None:
        async with serve_gateways() as served:
            ready.set_result(served)
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(run(),), daemon=True)
    thread.start()
    try:
        yield ready.result(timeout=10)
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()


@dataclass
class Agency:
    admin: Account
    agent: Account
    holder: Account
    customer: dict[str, Any]
    policy: dict[str, Any]
    tenant_id: uuid.UUID

    def webhook(self, gateway: str) -> str:
        return f"/api/v1/webhooks/{gateway}/{self.tenant_id}"


async def setup_gateways(api: Api, admin: Account) -> None:
    await api.call(
        "PUT",
        "/api/v1/integrations/razorpay",
        token=admin.access_token,
        json={
            "key_id": razorpay_fake.KEY_ID,
            "key_secret": razorpay_fake.KEY_SECRET,
            "webhook_secret": razorpay_fake.WEBHOOK_SECRET,
        },
        expect=200,
    )
    await setup_stripe(api, admin)


async def setup_stripe(api: Api, admin: Account) -> None:
    await api.call(
        "PUT",
        "/api/v1/integrations/stripe",
        token=admin.access_token,
        json={
            "publishable_key": stripe_fake.PUBLISHABLE_KEY,
            "secret_key": stripe_fake.SECRET_KEY,
            "webhook_secret": stripe_fake.WEBHOOK_SECRET,
        },
        expect=200,
    )


async def agency(api: Api, **policy: Any) -> Agency:
    """A tenant with both gateways, an agent, and a policyholder with a policy in their book."""
    admin = await api.tenant()
    agent = await api.user(admin, Role.SENIOR_AGENT)
    holder = await api.register(admin.tenant_slug)
    customer = await add_customer(api, agent, user_id=holder.user_id)
    made = await add_policy(api, agent, customer, premium_amount="2450.50", **policy)
    await setup_gateways(api, admin)
    _, me = await api.call("GET", "/api/v1/users/me", token=admin.access_token, expect=200)
    return Agency(admin, agent, holder, customer, made, uuid.UUID(me["data"]["tenant_id"]))


async def order(
    api: Api, by: Account, policy_id: str, gateway: str, key: str | None = None
) -> dict[str, Any]:
    headers = {"Idempotency-Key": key} if key else None
    _, body = await api.call(
        "POST",
        "/api/v1/payments/orders",
        token=by.access_token,
        json={"policy_id": policy_id, "gateway": gateway},
        headers=headers,
        expect=201,
    )
    data: dict[str, Any] = body["data"]
    return data


async def post_raw(api: Api, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    response = await api.client.post(path, data=body, headers=headers)
    return response.status, await response.json()


def razorpay_captured(
    payment: dict[str, Any], order: dict[str, Any], event: str = "payment.captured"
) -> bytes:
    if event == "order.paid":
        return razorpay_fake.webhook_body(event, payment=payment, order=order)
    return razorpay_fake.webhook_body(event, payment=payment)


async def payment(api: Api, by: Account, payment_id: str) -> dict[str, Any]:
    _, body = await api.call("GET", f"/api/v1/payments/{payment_id}", token=by.access_token)
    data: dict[str, Any] = body.get("data") or {}
    return data


def quarter_after(day: str) -> str:
    """The due date a quarterly premium paid on `day` moves to."""
    d = date.fromisoformat(day)
    month = d.month + 2
    return date(d.year + month // 12, month % 12 + 1, d.day).isoformat()
