"""The assistant's premium_payment answer with payment links: made by the payment sagas against
the local Razorpay server (the official SDK), for the asker's own premiums only, reused while
open, and the agent's promise instead when there is no gateway or the gateway refuses."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from handlers.keys import DATABASE, PAYMENTS
from mitra.db import Scope, utcnow
from mitra.errors import NotFound
from mitra.models import Payment
from mitra.settings import Settings
from tests.conftest import SettingsFactory
from tests.streams.conftest import eventually
from tests.support.api import Api
from tests.support.assistant import Asker, asker
from tests.support.chat import principal_of
from tests.support.payments import Gateways, serve_gateways, setup_gateways

LINKS_CREATED = ("POST", "/v1/payment_links")
LINK_WAIT = 3.0
AGENT_WILL_SEND = "Your agent will send you a payment link."


@pytest.fixture
async def gateways() -> AsyncIterator[Gateways]:
    async with serve_gateways() as served:
        yield served


@pytest.fixture
def settings(make_settings: SettingsFactory, gateways: Gateways) -> Settings:
    return make_settings(
        # Short enough for the slow-gateway test, ample for a local gateway.
        chatbot={"enabled": True, "payment_link_timeout_seconds": LINK_WAIT},
        chat={"rate_limit_messages": 1000},
        payments={**gateways.settings, "poll_interval_seconds": 3600},
    )


def _links_by_policy(gateways: Gateways) -> dict[str, dict[str, Any]]:
    """The links the fake Razorpay issued, by the policy number in their description."""
    return {
        str(link["description"]).rsplit(" ", 1)[-1]: link
        for link in gateways.razorpay.links.values()
    }


async def _payments_of(api: Api, chat: Asker) -> list[dict[str, Any]]:
    _, body = await api.call("GET", "/api/v1/payments", token=chat.agent.access_token, expect=200)
    items: list[dict[str, Any]] = body["data"]["items"]
    return items


async def test_asking_to_pay_in_english_and_hindi_gives_links_for_the_askers_own_premiums(
    api: Api, gateways: Gateways
) -> None:
    async with asker(api) as chat:
        await setup_gateways(api, chat.admin)  # both: Razorpay is preferred
        reply = await chat.ask("How do I pay my premium?")
        assert reply["meta"]["bot"] == {"source": "rule", "intent": "premium_payment"}
        body = reply["body"]
        issued = _links_by_policy(gateways)
        # One link per own policy with a premium due, for that premium's amount.
        assert sorted(issued) == sorted(p["policy_number"] for p in chat.policies)
        amounts = {p["policy_number"]: p["premium_amount"] for p in chat.policies}
        for number, link in issued.items():
            assert link["amount"] == round(float(amounts[number]) * 100)
            assert f"Pay here: {link['short_url']}" in body, body
        assert "₹2,450.50" in body
        assert "₹11,999.00" in body
        assert AGENT_WILL_SEND not in body
        # The stranger's policy is neither told nor linked.
        assert chat.other_policy["policy_number"] not in body
        assert gateways.stripe.calls == []

        # Asking again, in Hindi and in Hindi in Latin letters: the same links, no new ones.
        hindi = (await chat.ask("प्रीमियम का भुगतान कैसे करें?"))["body"]
        latin = (await chat.ask("premium ka payment kaise karu"))["body"]
        for link in issued.values():
            assert f"यहाँ भुगतान करें: {link['short_url']}" in hindi, hindi
            assert f"Yahan payment kijiye: {link['short_url']}" in latin, latin
        assert gateways.razorpay.calls.count(LINKS_CREATED) == 2
        assert _links_by_policy(gateways) == issued

        payments = await _payments_of(api, chat)
        assert len(payments) == 2
        assert {p["link_url"] for p in payments} == {link["short_url"] for link in issued.values()}
        assert {(p["gateway"], p["kind"], p["status"]) for p in payments} == {
            ("razorpay", "link", "order_placed")
        }


async def test_without_a_gateway_the_answer_says_the_agent_will_send_a_link(
    api: Api, gateways: Gateways
) -> None:
    async with asker(api, policies=1) as chat:
        body = (await chat.ask("How do I pay my premium?"))["body"]
        assert "₹2,450.50" in body
        assert AGENT_WILL_SEND in body
        assert "Pay here" not in body
        hindi = (await chat.ask("प्रीमियम का भुगतान कैसे करें?"))["body"]
        assert "आपका एजेंट आपको भुगतान का लिंक भेजेगा।" in hindi
        assert gateways.razorpay.calls == []
        assert gateways.stripe.calls == []
        assert await _payments_of(api, chat) == []


async def test_a_refusing_gateway_gets_the_agents_promise_and_the_reply_still_arrives(
    api: Api, gateways: Gateways
) -> None:
    async with asker(api, policies=1) as chat:
        await setup_gateways(api, chat.admin)
        gateways.razorpay.refuse_links = True
        body = (await chat.ask("How do I pay my premium?", within=10))["body"]
        assert "₹2,450.50" in body
        assert AGENT_WILL_SEND in body
        assert "https://" not in body
        assert gateways.razorpay.calls.count(LINKS_CREATED) == 1

        # Once the gateway takes links again, asking again gives one (the refused try left
        # no link to reuse).
        gateways.razorpay.refuse_links = False
        body = (await chat.ask("How do I pay my premium?"))["body"]
        (link,) = gateways.razorpay.links.values()
        assert f"Pay here: {link['short_url']}" in body
        statuses = sorted(p["status"] for p in await _payments_of(api, chat))
        assert statuses == ["failed", "order_placed"]


async def test_a_slow_gateway_does_not_hold_the_reply_and_its_late_link_is_reused(
    api: Api, gateways: Gateways
) -> None:
    async with asker(api, policies=1) as chat:
        await setup_gateways(api, chat.admin)
        gateways.razorpay.link_delay = LINK_WAIT + 1.5
        started = time.monotonic()
        body = (await chat.ask("How do I pay my premium?"))["body"]
        assert time.monotonic() - started < LINK_WAIT + 1.5
        assert AGENT_WILL_SEND in body
        assert "₹2,450.50" in body

        # The saga finished placing the link after the answer left; asking again gives it.
        async def placed() -> bool:
            return [p["status"] for p in await _payments_of(api, chat)] == ["order_placed"]

        await eventually(placed, within=10)
        gateways.razorpay.link_delay = 0.0
        body = (await chat.ask("How do I pay my premium?"))["body"]
        (link,) = gateways.razorpay.links.values()
        assert f"Pay here: {link['short_url']}" in body
        assert gateways.razorpay.calls.count(LINKS_CREATED) == 1


async def _set_payment(api: Api, chat: Asker, payment_id: str, **values: Any) -> None:
    tenant_id = (await principal_of(api, chat.agent)).tenant_id
    async with api.app[DATABASE].transaction(Scope.tenant(tenant_id)) as session:
        await session.execute(
            update(Payment).where(Payment.id == uuid.UUID(payment_id)).values(**values)
        )


async def test_an_expired_link_is_replaced_and_one_being_paid_is_not(
    api: Api, gateways: Gateways
) -> None:
    async with asker(api, policies=1) as chat:
        await setup_gateways(api, chat.admin)
        await chat.ask("How do I pay my premium?")
        (first,) = await _payments_of(api, chat)
        # The link ran out: asking again makes a new one.
        await _set_payment(api, chat, first["id"], expires_at=utcnow() - timedelta(seconds=1))
        body = (await chat.ask("How do I pay my premium?"))["body"]
        assert gateways.razorpay.calls.count(LINKS_CREATED) == 2
        (second,) = [p for p in await _payments_of(api, chat) if p["id"] != first["id"]]
        assert f"Pay here: {second['link_url']}" in body
        assert second["link_url"] != first["link_url"]
        # The customer has paid it, not yet credited: no third link that could take it twice.
        await _set_payment(api, chat, second["id"], status="authorised")
        body = (await chat.ask("How do I pay my premium?"))["body"]
        assert AGENT_WILL_SEND in body
        assert gateways.razorpay.calls.count(LINKS_CREATED) == 2


async def test_another_customers_policy_never_gets_a_link(api: Api, gateways: Gateways) -> None:
    async with asker(api, policies=1) as chat:
        await setup_gateways(api, chat.admin)
        await chat.ask("How do I pay my premium?")
        assert list(_links_by_policy(gateways)) == [chat.policies[0]["policy_number"]]
        # Not even when asked for it by id, on behalf of this customer.
        tenant_id = (await principal_of(api, chat.agent)).tenant_id
        with pytest.raises(NotFound):
            await api.app[PAYMENTS].link_for_customer(
                tenant_id,
                uuid.UUID(chat.customer["id"]),
                uuid.UUID(chat.other_policy["id"]),
                "razorpay",
                expires_in=timedelta(hours=1),
            )
        assert chat.other_policy["policy_number"] not in _links_by_policy(gateways)
