"""The assistant for tests: a policyholder in their agent's conversation, asking on the socket."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from mitra.models import Role
from tests.support.api import Account, Api
from tests.support.book import add_customer, add_policy
from tests.support.ws import ChatClient

WAIT = 15.0


@dataclass
class Asker:
    """A policyholder with two policies, asking in their conversation; another customer of the
    same agency (another agent's) has a policy whose details must never reach them."""

    admin: Account
    agent: Account
    holder: Account
    customer: dict[str, Any]
    policies: list[dict[str, Any]]
    other_policy: dict[str, Any]
    conversation_id: str
    socket: ChatClient

    async def ask(self, text: str, within: float = WAIT) -> dict[str, Any]:
        """Send `text` as the policyholder; the assistant's reply to it."""
        ack = await self.socket.say(self.conversation_id, f"q-{uuid.uuid4().hex[:12]}", text)
        return await self.reply_to(ack, within)

    async def reply_to(self, ack: dict[str, Any], within: float = WAIT) -> dict[str, Any]:
        return await self.socket.expect(
            "message", lambda f: f["client_msg_id"] == f"bot-{ack['message_id']}", within
        )


@asynccontextmanager
async def asker(api: Api, *, policies: int = 2) -> AsyncIterator[Asker]:
    admin = await api.tenant()
    agent = await api.user(admin, Role.SENIOR_AGENT)
    other_agent = await api.user(admin, Role.SENIOR_AGENT)
    holder = await api.register(admin.tenant_slug)
    customer = await add_customer(
        api, agent, user_id=holder.user_id, full_name="Sunita Sharma", phone="98111 22334",
        email="sunita@example.com",
    )  # fmt: skip
    own = [
        await add_policy(api, agent, customer, plan_name=plan, premium_amount=amount)
        for plan, amount in [("Jeevan Anand", "2450.50"), ("Tech Term", "11999.00")][:policies]
    ]
    stranger = await add_customer(api, other_agent, full_name="Arjun Singh", phone="91234 56789")
    other = await add_policy(api, other_agent, stranger, plan_name="Jeevan Labh",
                             premium_amount="7777.00")  # fmt: skip
    _, opened = await api.call(
        "POST", "/api/v1/conversations", json={}, token=holder.access_token, expect=201
    )
    conversation_id = opened["data"]["id"]
    socket = await ChatClient.connect(api.client, holder.access_token)
    await socket.join(conversation_id)
    try:
        yield Asker(admin, agent, holder, customer, own, other, conversation_id, socket)
    finally:
        await socket.close()
