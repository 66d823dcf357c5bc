"""Policyholders in their agent's conversation: opening it themselves, and joining it when their
account is linked to the customer, with the live actor learning the new member at once."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from actors.chat import ChatActors
from handlers.app import create_app
from handlers.keys import CHAT
from mitra.models import Role
from streams import create_streams
from tests.conftest import SettingsFactory
from tests.support.api import Account, Api
from tests.support.book import add_customer
from tests.support.notifier import RecordingNotifier
from tests.support.ws import ChatClient

CONVERSATIONS = "/api/v1/conversations"


async def _agent_conversation(api: Api, agent: Account, customer: dict[str, Any]) -> str:
    _, opened = await api.call(
        "POST", CONVERSATIONS, json={"customer_id": customer["id"]}, token=agent.access_token,
        expect=201,
    )  # fmt: skip
    conversation_id: str = opened["data"]["id"]
    return conversation_id


async def test_a_policyholder_opens_the_agents_conversation_and_sends_on_the_socket(
    api: Api,
) -> None:
    admin = await api.tenant()
    agent = await api.user(admin, Role.SENIOR_AGENT)
    holder = await api.register(admin.tenant_slug)
    customer = await add_customer(api, agent)
    conversation_id = await _agent_conversation(api, agent, customer)
    agent_socket = await ChatClient.connect(api.client, agent.access_token)
    await agent_socket.join(conversation_id)
    await agent_socket.say(conversation_id, "welcome")  # the conversation's actor is live
    await api.call(
        "PATCH", f"/api/v1/customers/{customer['id']}", json={"user_id": holder.user_id},
        token=agent.access_token, expect=200,
    )  # fmt: skip

    # Named or not, the holder's customer leads to the agent's conversation: no second one.
    for body in ({"customer_id": customer["id"]}, {}):
        _, opened = await api.call(
            "POST", CONVERSATIONS, json=body, token=holder.access_token, expect=200
        )
        assert opened["data"]["id"] == conversation_id
        assert set(opened["data"]["member_ids"]) == {agent.user_id, holder.user_id}
        assert opened["data"]["last_seq"] == 1
    _, theirs = await api.call("GET", CONVERSATIONS, token=holder.access_token, expect=200)
    assert [c["id"] for c in theirs["data"]["items"]] == [conversation_id]

    holder_socket = await ChatClient.connect(api.client, holder.access_token)
    joined = await holder_socket.join(conversation_id)
    assert joined["last_seq"] == 1
    assert [m["body"] for m in await holder_socket.messages(1)] == ["hi"]
    ack = await holder_socket.say(conversation_id, "thanks", "thank you")
    assert ack["seq"] == 2
    heard = await agent_socket.expect("message", lambda f: f["seq"] == 2)
    assert (heard["sender_id"], heard["body"]) == (holder.user_id, "thank you")
    await holder_socket.close()
    await agent_socket.close()


async def test_a_policyholder_whose_customer_has_no_conversation_yet_starts_it(api: Api) -> None:
    admin = await api.tenant()
    agent = await api.user(admin, Role.SENIOR_AGENT)
    holder = await api.register(admin.tenant_slug)
    await add_customer(api, agent, user_id=holder.user_id)
    _, opened = await api.call(
        "POST", CONVERSATIONS, json={}, token=holder.access_token, expect=201
    )
    assert set(opened["data"]["member_ids"]) == {agent.user_id, holder.user_id}
    # The agent opening theirs afterwards finds the same one.
    _, again = await api.call(
        "POST", CONVERSATIONS, json={"customer_id": opened["data"]["customer_id"]},
        token=agent.access_token, expect=200,
    )  # fmt: skip
    assert again["data"]["id"] == opened["data"]["id"]


async def test_a_policyholder_without_a_linked_customer_is_told_so(api: Api) -> None:
    admin = await api.tenant()
    agent = await api.user(admin, Role.SENIOR_AGENT)
    holder = await api.register(admin.tenant_slug)
    someone_elses = await add_customer(api, agent)
    status, body = await api.call("POST", CONVERSATIONS, json={}, token=holder.access_token)
    assert status == 409
    assert "not linked to a customer" in body["message"]
    status, _ = await api.call(
        "POST", CONVERSATIONS, json={"customer_id": someone_elses["id"]}, token=holder.access_token
    )
    assert status == 404
    # Staff name the customer; both kinds at once is a mistake.
    status, body = await api.call("POST", CONVERSATIONS, json={}, token=agent.access_token)
    assert status == 422
    assert body["errors"][0]["field"] == "customer_id"
    both = {"customer_id": someone_elses["id"], "participant_ids": []}
    status, _ = await api.call("POST", CONVERSATIONS, json=both, token=agent.access_token)
    assert status == 422


async def test_linking_an_account_adds_it_to_the_live_conversation(api: Api) -> None:
    admin = await api.tenant()
    agent = await api.user(admin, Role.SENIOR_AGENT)
    junior = await api.user(admin, Role.JUNIOR_AGENT)
    holder = await api.register(admin.tenant_slug)
    customer = await add_customer(api, agent)
    conversation_id = await _agent_conversation(api, agent, customer)
    agent_socket = await ChatClient.connect(api.client, agent.access_token)
    await agent_socket.join(conversation_id)
    await agent_socket.say(conversation_id, "before")  # the actor holds the members from here
    holder_socket = await ChatClient.connect(api.client, holder.access_token)
    await holder_socket.send({"type": "join", "conversation_id": conversation_id, "ref": "j"})
    assert (await holder_socket.expect("error"))["code"] == "not_member"

    await api.call(
        "PATCH", f"/api/v1/customers/{customer['id']}", json={"user_id": holder.user_id},
        token=agent.access_token, expect=200,
    )  # fmt: skip
    # Right away: no waiting for the actor to hear of it.
    joined = await holder_socket.join(conversation_id)
    assert joined["last_seq"] == 1
    ack = await holder_socket.say(conversation_id, "now-i-am-in")
    assert ack["seq"] == 2
    assert (await agent_socket.expect("message", lambda f: f["seq"] == 2))["sender_id"] == (
        holder.user_id
    )
    _, listed = await api.call("GET", CONVERSATIONS, token=agent.access_token, expect=200)
    (summary,) = listed["data"]["items"]
    assert set(summary["member_ids"]) == {agent.user_id, holder.user_id}
    # Re-saving the same link adds nobody twice; another member is still refused.
    await api.call(
        "PATCH", f"/api/v1/customers/{customer['id']}", json={"user_id": holder.user_id},
        token=agent.access_token, expect=200,
    )  # fmt: skip
    _, listed = await api.call("GET", CONVERSATIONS, token=agent.access_token, expect=200)
    assert len(listed["data"]["items"][0]["member_ids"]) == 2
    status, _ = await api.call(
        "POST", f"{CONVERSATIONS}/{conversation_id}/messages",
        json={"client_msg_id": "x", "body": "x"}, token=junior.access_token,
    )  # fmt: skip
    assert status == 404
    await holder_socket.close()
    await agent_socket.close()


async def test_the_owning_instance_hears_of_a_link_made_on_another(
    make_settings: SettingsFactory, aiohttp_client: Any
) -> None:
    settings = make_settings()
    streams = create_streams("memory://")
    await streams.start()
    try:
        notifier = RecordingNotifier()
        first_app = create_app(settings, notifier=notifier, streams=streams)
        second_app = create_app(settings, notifier=notifier, streams=streams)
        first = Api(await aiohttp_client(first_app), first_app, notifier)
        second = Api(await aiohttp_client(second_app), second_app, notifier)
        admin = await first.tenant()
        agent = await first.user(admin, Role.SENIOR_AGENT)
        holder = await first.register(admin.tenant_slug)
        customer = await add_customer(first, agent)
        conversation_id = uuid.UUID(await _agent_conversation(first, agent, customer))
        heard: dict[str, asyncio.Event] = {"first": asyncio.Event(), "second": asyncio.Event()}
        for name, app in (("first", first_app), ("second", second_app)):
            _record_members_changed(app[CHAT], conversation_id, heard[name])

        await second.call(
            "PATCH", f"/api/v1/customers/{customer['id']}", json={"user_id": holder.user_id},
            token=agent.access_token, expect=200,
        )  # fmt: skip
        # Whichever instance owns the conversation's actor, it is told.
        async with asyncio.timeout(5):
            await heard["first"].wait()
            await heard["second"].wait()
        for api in (first, second):
            _, sent = await api.call(
                "POST", f"{CONVERSATIONS}/{conversation_id}/messages",
                json={"client_msg_id": f"from-{id(api)}", "body": "hello"},
                token=holder.access_token, expect=201,
            )  # fmt: skip
            assert sent["data"]["sender_id"] == holder.user_id
    finally:
        await streams.stop()


def _record_members_changed(
    chat: ChatActors, conversation_id: uuid.UUID, heard: asyncio.Event
) -> None:
    original = chat.members_changed

    def members_changed(tenant_id: uuid.UUID, changed: uuid.UUID) -> None:
        if changed == conversation_id:
            heard.set()
        original(tenant_id, changed)

    chat.members_changed = members_changed  # type: ignore[method-assign,assignment]
