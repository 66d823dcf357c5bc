"""The assistant in a policyholder's conversation: intents in English and Hindi answered from
their own policies only, the hand-off to the agent and back, and the agent taking over."""

from __future__ import annotations

from typing import Any

import pytest

from mitra.settings import Settings
from tests.conftest import SettingsFactory
from tests.support.api import Api
from tests.support.assistant import asker
from tests.support.ws import ChatClient

CALLBACKS = "/api/v1/callbacks"


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
