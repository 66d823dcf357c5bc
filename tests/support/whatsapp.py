"""WhatsApp for tests: a tenant's integration, and webhook bodies shaped and signed as Meta's."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import orjson

from mitra.models import Role
from mitra.whatsapp.webhook import SIGNATURE_HEADER, sign
from tests.support.api import Account, Api
from tests.support.fake_graph import FakeGraph, serve_fake_graph

APP_SECRET = "test-app-secret-0123456789"
VERIFY_TOKEN = "test-verify-token-abcd"
ACCESS_TOKEN = "EAAtest-access-token-wxyz"
PHONE_NUMBER_ID = "106540352242922"
# Meta's clock for the tests' customer messages: an hour ago, well inside the 24-hour window that
# is counted from it. Tests add seconds to T0 to order messages.
T0 = int(time.time()) - 3600


@asynccontextmanager
async def fake_graph_server() -> AsyncIterator[tuple[FakeGraph, str]]:
    """Meta's Graph API on loopback, knowing the test business number: (fake, base URL)."""
    fake = FakeGraph()
    fake.add_phone_number(PHONE_NUMBER_ID, ACCESS_TOKEN)
    async with serve_fake_graph(fake) as base_url:
        yield fake, base_url


@dataclass
class WhatsAppTenant:
    admin: Account
    agent: Account
    tenant_id: uuid.UUID

    @property
    def webhook(self) -> str:
        return f"/api/v1/webhooks/whatsapp/{self.tenant_id}"


async def whatsapp_tenant(api: Api) -> WhatsAppTenant:
    admin = await api.tenant()
    agent = await api.user(admin, Role.SENIOR_AGENT)
    _, me = await api.call("GET", "/api/v1/users/me", token=admin.access_token, expect=200)
    await api.call(
        "PUT",
        "/api/v1/integrations/whatsapp",
        token=admin.access_token,
        json={
            "phone_number_id": PHONE_NUMBER_ID,
            "business_number": "+91 98200 00001",
            "default_agent_id": agent.user_id,
            "access_token": ACCESS_TOKEN,
            "app_secret": APP_SECRET,
            "verify_token": VERIFY_TOKEN,
        },
        expect=200,
    )
    return WhatsAppTenant(admin, agent, uuid.UUID(me["data"]["tenant_id"]))


def text(wamid: str, sender: str, body: str, timestamp: int = T0) -> dict[str, Any]:
    return {
        "from": sender,
        "id": wamid,
        "timestamp": str(timestamp),
        "type": "text",
        "text": {"body": body},
    }


def webhook_body(
    messages: list[dict[str, Any]] = (),  # type: ignore[assignment]
    statuses: list[dict[str, Any]] = (),  # type: ignore[assignment]
    *,
    phone_number_id: str = PHONE_NUMBER_ID,
    names: dict[str, str] | None = None,
) -> dict[str, Any]:
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "919820000001", "phone_number_id": phone_number_id},
    }
    if messages:
        senders = {m["from"] for m in messages}
        value["contacts"] = [
            {"profile": {"name": (names or {}).get(s, "")}, "wa_id": s} for s in sorted(senders)
        ]
        value["messages"] = list(messages)
    if statuses:
        value["statuses"] = list(statuses)
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"value": value, "field": "messages"}]}],
    }


def raw(body: dict[str, Any]) -> bytes:
    # Non-ASCII stays as UTF-8 bytes, as Meta sends it.
    return orjson.dumps(body)


async def post_webhook(
    api: Api, path: str, data: bytes, secret: str | None = APP_SECRET
) -> tuple[int, str]:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers[SIGNATURE_HEADER] = sign(data, secret)
    response = await api.client.post(path, data=data, headers=headers)
    return response.status, await response.text()


async def customer_conversation(api: Api, wa: WhatsAppTenant) -> tuple[str, str]:
    """The agent's customer with the WhatsApp number, and their conversation (ids)."""
    _, customer = await api.call(
        "POST",
        "/api/v1/customers",
        token=wa.agent.access_token,
        json={"full_name": "Ravi Kumar", "phone": "+91 98765 43210"},
        expect=201,
    )
    customer_id = customer["data"]["id"]
    _, opened = await api.call(
        "POST",
        "/api/v1/conversations",
        token=wa.agent.access_token,
        json={"customer_id": customer_id},
    )
    return customer_id, opened["data"]["id"]
