"""The assistant in a policyholder's conversation: intents in English and Hindi answered from
their own policies only, the hand-off to the agent and back, and the agent taking over."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from handlers.keys import ASSISTANT_INBOUND, DATABASE
from mitra.db import Scope, utcnow
from mitra.models import Conversation, Message, Role
from mitra.settings import Settings
from tests.conftest import SettingsFactory
from tests.support.api import Api
from tests.support.assistant import asker
from tests.support.chat import principal_of
from tests.support.ws import ChatClient

CALLBACKS = "/api/v1/callbacks"
DASHBOARD = "/api/v1/analytics/dashboard"


@pytest.fixture
def settings(make_settings: SettingsFactory) -> Settings:
    return make_settings(chatbot={"enabled": True}, chat={"rate_limit_messages": 1000})


def _bot(frame: dict[str, Any]) -> dict[str, Any]:
    assert frame["sender_type"] == "bot"
    assert frame["sender_id"] is None
    bot: dict[str, Any] = frame["meta"]["bot"]
    return bot


async def test_premium_due_in_hindi_and_english_answers_with_the_askers_own_figures(
    api: Api,
) -> None:
    async with asker(api) as chat:
        mine = [p["policy_number"] for p in chat.policies]
        for question in (
            "मेरा अगला प्रीमियम कब है?",
            "mera premium kab due hai",
            "When is my next premium due?",
        ):
            reply = await chat.ask(question)
            assert _bot(reply) == {"source": "rule", "intent": "premium_due"}
            body = reply["body"]
            assert all(number in body for number in mine), body
            assert "₹2,450.50" in body
            assert "₹11,999.00" in body
            # Another customer's policy, in the same agency, never appears.
            assert chat.other_policy["policy_number"] not in body
            assert "7,777" not in body
        assert "आपका अगला प्रीमियम" in (await chat.ask("प्रीमियम कब देना है"))["body"]


INTENT_QUESTIONS = [
    ("What is the status of my policy?", "policy_status", "Your policies:"),
    ("मेरी पॉलिसी की स्थिति क्या है?", "policy_status", "आपकी पॉलिसी:"),
    ("meri policy ka status batao", "policy_status", "Aapki policy:"),
    ("How do I pay my premium?", "premium_payment", "To pay your premium:"),
    ("प्रीमियम का भुगतान कैसे करें?", "premium_payment", "प्रीमियम भरने के लिए:"),
    ("premium ka payment kaise karu", "premium_payment", "Premium bharne ke liye:"),
    ("How do I file a claim?", "claim_process", "To make a claim"),
    ("क्लेम कैसे करें?", "claim_process", "क्लेम के लिए"),
    ("claim kaise karna hai", "claim_process", "Claim ke liye"),
    ("Hello", "greeting", "Hello!"),
    ("नमस्ते", "greeting", "नमस्ते!"),
    ("namaste ji", "greeting", "Namaste!"),
    ("thanks a lot", "thanks", "You're welcome"),
    ("धन्यवाद", "thanks", "आपका स्वागत है"),
    ("bahut shukriya", "thanks", "Aapka swagat hai"),
]


async def test_each_intent_is_answered_in_the_language_it_was_asked_in(api: Api) -> None:
    async with asker(api) as chat:
        for question, intent, opening in INTENT_QUESTIONS:
            reply = await chat.ask(question)
            assert _bot(reply)["intent"] == intent, question
            assert reply["body"].startswith(opening), (question, reply["body"])
            if intent in ("policy_status", "premium_payment"):
                assert chat.policies[0]["policy_number"] in reply["body"]
                assert chat.other_policy["policy_number"] not in reply["body"]


async def test_a_policyholder_without_policies_is_told_so(api: Api) -> None:
    async with asker(api, policies=0) as chat:
        for question, expected in (
            ("is my policy active?", "could not find any policy"),
            ("मेरा प्रीमियम कब है", "कोई पॉलिसी नहीं मिली"),
        ):
            reply = await chat.ask(question)
            assert expected in reply["body"]
            assert chat.other_policy["policy_number"] not in reply["body"]
            assert "LIC-" not in reply["body"]  # no policy number made up either


async def test_talk_to_my_agent_hands_over_and_hand_back_returns_to_the_assistant(
    api: Api,
) -> None:
    async with asker(api) as chat:
        agent_socket = await ChatClient.connect(api.client, chat.agent.access_token)
        reply = await chat.ask("I want to talk to my agent")
        assert reply["body"].startswith("I have asked your agent")
        escalation = await agent_socket.expect("escalation")
        assert escalation["conversation_id"] == chat.conversation_id
        assert escalation["reason"] == "asked_for_agent"
        mode = await chat.socket.expect("mode")
        assert mode == {"type": "mode", "conversation_id": chat.conversation_id, "mode": "agent"}
        notice = await chat.socket.expect("message", lambda f: f["sender_type"] == "system")
        assert notice["meta"] == {"mode": "agent"}

        _, listed = await api.call("GET", CALLBACKS, token=chat.agent.access_token, expect=200)
        (callback,) = listed["data"]
        assert callback["reason"] == "asked_for_agent"
        assert callback["customer_id"] == chat.customer["id"]
        assert callback["status"] == "open"
        assert any("talk to my agent" in m["body"] for m in callback["last_messages"])
        # Admins see the agency's; the policyholder sees none of it.
        _, seen = await api.call("GET", CALLBACKS, token=chat.admin.access_token, expect=200)
        assert [c["id"] for c in seen["data"]] == [callback["id"]]
        status, _ = await api.call("GET", CALLBACKS, token=chat.holder.access_token)
        assert status == 403

        # In agent mode the assistant is silent: the next question gets no reply.
        ack = await chat.socket.say(chat.conversation_id, "q-silent", "when is my premium due?")
        with pytest.raises(TimeoutError):
            await chat.reply_to(ack, within=1.0)

        url = f"/api/v1/conversations/{chat.conversation_id}/handback"
        status, _ = await api.call("POST", url, token=chat.holder.access_token)
        assert status == 403
        _, back = await api.call("POST", url, token=chat.agent.access_token, expect=200)
        assert back["data"] == {
            "conversation_id": chat.conversation_id, "mode": "bot", "changed": True,
        }  # fmt: skip
        mode = await chat.socket.expect("mode")
        assert mode["mode"] == "bot"
        reply = await chat.ask("when is my premium due?")
        assert _bot(reply)["intent"] == "premium_due"

        done_url = f"{CALLBACKS}/{callback['id']}"
        _, done = await api.call(
            "PATCH", done_url, json={"status": "done"}, token=chat.agent.access_token, expect=200
        )
        assert done["data"]["status"] == "done"
        assert done["data"]["done_at"] is not None
        _, still_open = await api.call(
            "GET", f"{CALLBACKS}?status=open", token=chat.agent.access_token, expect=200
        )
        assert still_open["data"] == []
        await agent_socket.close()


async def test_hindi_words_for_a_person_hand_over_too(api: Api) -> None:
    async with asker(api) as chat:
        reply = await chat.ask("mujhe insaan se baat karni hai")
        assert reply["body"].startswith("Maine aapke agent ko bata diya hai")
        assert (await chat.socket.expect("mode"))["mode"] == "agent"


async def test_the_agents_first_message_silences_the_assistant(api: Api) -> None:
    async with asker(api) as chat:
        agent_socket = await ChatClient.connect(api.client, chat.agent.access_token)
        await agent_socket.join(chat.conversation_id)
        reply = await chat.ask("hello")
        assert _bot(reply)["intent"] == "greeting"
        await agent_socket.say(chat.conversation_id, "a-1", "Namaste Sunita ji, I am here")
        assert (await chat.socket.expect("mode"))["mode"] == "agent"
        assert (await agent_socket.expect("mode"))["mode"] == "agent"
        ack = await chat.socket.say(chat.conversation_id, "q-after", "when is my premium due?")
        with pytest.raises(TimeoutError):
            await chat.reply_to(ack, within=1.0)
        await agent_socket.close()


async def test_after_agent_idle_minutes_the_assistant_answers_again(api: Api) -> None:
    async with asker(api) as chat:
        agent_socket = await ChatClient.connect(api.client, chat.agent.access_token)
        await agent_socket.join(chat.conversation_id)
        await agent_socket.say(chat.conversation_id, "a-1", "I will check and reply")
        assert (await chat.socket.expect("mode"))["mode"] == "agent"
        # An hour passes (the setting is 30 minutes) without the agent writing.
        hour_ago = utcnow() - timedelta(hours=1)
        conversation_id = uuid.UUID(chat.conversation_id)
        tenant_id = (await principal_of(api, chat.agent)).tenant_id
        async with api.app[DATABASE].transaction(Scope.tenant(tenant_id)) as session:
            await session.execute(
                update(Conversation)
                .where(Conversation.id == conversation_id)
                .values(mode_changed_at=hour_ago)
            )
            await session.execute(
                update(Message)
                .where(Message.conversation_id == conversation_id, Message.client_msg_id == "a-1")
                .values(sent_at=hour_ago)
            )
        reply = await chat.ask("when is my premium due?")
        assert _bot(reply)["intent"] == "premium_due"
        assert (await chat.socket.expect("mode"))["mode"] == "bot"
        await agent_socket.close()


async def test_replies_and_hand_offs_reach_the_agents_dashboard(api: Api) -> None:
    async with asker(api) as chat:
        await chat.ask("hello")
        await chat.ask("when is my premium due?")
        await chat.ask("talk to my agent")
        async with asyncio.timeout(10):
            while True:
                _, body = await api.call(
                    "GET", DASHBOARD, token=chat.agent.access_token, expect=200
                )
                totals = body["data"]["totals"]
                if totals["bot_replies"]["count"] >= 3 and totals["bot_escalations"]["count"]:
                    break
                await asyncio.sleep(0.05)
        assert totals["bot_replies"]["count"] == 3  # the hand-off's "your agent will reply" too
        assert totals["bot_escalations"]["count"] == 1


async def test_a_tenant_adds_its_own_phrases_and_starts_conversations_with_the_agent(
    api: Api,
) -> None:
    async with asker(api) as chat:
        url = "/api/v1/assistant/settings"
        own = {"phrases": {"hi-Latn": {"premium_due": ["paisa kab bharna"]}}}
        status, _ = await api.call("PUT", url, json=own, token=chat.agent.access_token)
        assert status == 403
        bad = {"phrases": {"fr": {"premium_due": ["quand"]}}}
        status, refused = await api.call("PUT", url, json=bad, token=chat.admin.access_token)
        assert status == 422
        assert refused["errors"][0]["field"].startswith("phrases")
        _, saved = await api.call("PUT", url, json=own, token=chat.admin.access_token, expect=200)
        assert saved["data"]["default_mode"] == "bot"
        assert saved["data"]["own_default"] is False
        # The actor read the tenant's rules before the change: a new one reads them afresh.
        api.app[ASSISTANT_INBOUND].actors.passivate((await principal_of(api, chat.admin)).tenant_id)
        reply = await chat.ask("agla paisa kab bharna hai")
        assert _bot(reply)["intent"] == "premium_due"

        await api.call("PUT", url, json={"default_mode": "agent"}, token=chat.admin.access_token,
                       expect=200)  # fmt: skip
        _, shown = await api.call("GET", url, token=chat.agent.access_token, expect=200)
        assert shown["data"]["default_mode"] == "agent"
        # A conversation that never switched follows the agency's default: silent now.
        ack = await chat.socket.say(chat.conversation_id, "q-quiet", "when is my premium due?")
        with pytest.raises(TimeoutError):
            await chat.reply_to(ack, within=1.0)
    async with asker(api) as other:
        ack = await other.socket.say(other.conversation_id, "q-1", "when is my premium due?")
        await other.reply_to(ack)  # another agency: still the deployment's "bot"


async def test_another_agencys_staff_and_other_agents_get_404(api: Api) -> None:
    async with asker(api) as chat:
        await chat.ask("talk to my agent")
        _, listed = await api.call("GET", CALLBACKS, token=chat.agent.access_token, expect=200)
        callback_url = f"{CALLBACKS}/{listed['data'][0]['id']}"
        handback = f"/api/v1/conversations/{chat.conversation_id}/handback"
        stranger = await api.tenant()
        colleague = await api.user(chat.admin, Role.SENIOR_AGENT)
        for account in (stranger, colleague):
            status, _ = await api.call("POST", handback, token=account.access_token)
            assert status == 404
            status, _ = await api.call(
                "PATCH", callback_url, json={"status": "done"}, token=account.access_token
            )
            assert status == 404
            _, theirs = await api.call("GET", CALLBACKS, token=account.access_token, expect=200)
            assert theirs["data"] == []
        status, refused = await api.call(
            "PATCH", callback_url, json={"status": "closed"}, token=chat.agent.access_token
        )
        assert status == 422
        assert refused["errors"][0]["field"] == "status"
