"""The assistant on WhatsApp: a customer matched by their number gets their own figures back
through the WhatsApp outbound path; a number that matches no customer gets nobody's."""

from __future__ import annotations

import pytest

from mitra.settings import Settings
from tests.conftest import SettingsFactory
from tests.streams.conftest import eventually
from tests.support.api import Api
from tests.support.book import add_policy
from tests.support.fake_graph import FakeGraph
from tests.support.whatsapp import (
    customer_conversation,
    post_webhook,
    raw,
    text,
    webhook_body,
    whatsapp_tenant,
)

KNOWN = "919876543210"  # customer_conversation's customer: +91 98765 43210
UNKNOWN = "919000000001"


@pytest.fixture
def settings(make_settings: SettingsFactory, graph: tuple[FakeGraph, str]) -> Settings:
    return make_settings(whatsapp={"graph_base_url": graph[1]}, chatbot={"enabled": True})


def _texts_to(fake: FakeGraph, number: str) -> list[str]:
    return [
        sent.body["text"]["body"]
        for sent in fake.sent
        if sent.body.get("to") == number and sent.body.get("type") == "text"
    ]


async def test_a_whatsapp_customer_gets_their_own_policies_and_a_stranger_nobodys(
    api: Api, graph: tuple[FakeGraph, str]
) -> None:
    fake, _ = graph
    wa = await whatsapp_tenant(api)
    customer_id, _ = await customer_conversation(api, wa)
    policy = await add_policy(api, wa.agent, {"id": customer_id}, premium_amount="3100.00")

    data = raw(webhook_body([text("wamid.q1", KNOWN, "mera premium kab hai?")]))
    assert (await post_webhook(api, wa.webhook, data))[0] == 200
    await eventually(lambda: bool(_texts_to(fake, KNOWN)))
    (answer,) = _texts_to(fake, KNOWN)
    assert policy["policy_number"] in answer
    assert "₹3,100.00" in answer

    data = raw(webhook_body([text("wamid.q2", UNKNOWN, "What is my policy status?")]))
    assert (await post_webhook(api, wa.webhook, data))[0] == 200
    await eventually(lambda: bool(_texts_to(fake, UNKNOWN)))
    (answer,) = _texts_to(fake, UNKNOWN)
    assert "could not find any policy" in answer
    assert policy["policy_number"] not in answer
