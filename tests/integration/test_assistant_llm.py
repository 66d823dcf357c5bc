"""The assistant's LLM fallback through the real `openai` SDK, against a local server speaking
Chat Completions: what leaves is masked, failures fall back plainly, the breaker opens, the
budget holds, and a tenant's own key is used and never shown."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from handlers.keys import INTEGRATIONS
from mitra.assistant.llm import OPENAI
from mitra.settings import Settings
from tests.conftest import SettingsFactory
from tests.support.api import Api
from tests.support.assistant import asker
from tests.support.chat import principal_of
from tests.support.fake_openai import FakeOpenAI, Step, serve_fake_openai
from tests.support.ws import ChatClient

QUESTION = "Can my brother be added as nominee?"


@pytest.fixture
async def openai() -> AsyncIterator[tuple[FakeOpenAI, str]]:
    fake = FakeOpenAI()
    async with serve_fake_openai(fake) as base_url:
        yield fake, base_url


@pytest.fixture
def chatbot() -> dict[str, Any]:
    """A test's own chatbot settings over the module's (parametrize "chatbot" to set them)."""
    return {}


@pytest.fixture
def settings(
    make_settings: SettingsFactory, openai: tuple[FakeOpenAI, str], chatbot: dict[str, Any]
) -> Settings:
    return make_settings(
        chatbot={
            "enabled": True,
            "openai_base_url": openai[1],
            "openai_api_key": "sk-test-server-key-0000",
            "timeout_seconds": 0.5,
            "max_retries": 2,
            "breaker_failures": 2,
            "breaker_cooldown_seconds": 600,
            "daily_token_budget": 100,
            "max_reply_chars": 120,
            **chatbot,
        },
        chat={"rate_limit_messages": 1000},
    )


async def test_personal_data_is_masked_on_the_way_out_and_only_the_askers_comes_back(
    api: Api, openai: tuple[FakeOpenAI, str]
) -> None:
    fake, _ = openai
    fake.then(Step(content="Dear [NAME_1], we will call you on [PHONE_2]. "
                           "[NAME_2] can be added at [PHONE_1]."))  # fmt: skip
    async with asker(api) as chat:
        reply = await chat.ask(
            "Can my brother Arjun Singh (91234 56789) be added as nominee? I am Sunita Sharma, "
            "98111 22334, sunita@example.com"
        )
        assert reply["meta"]["bot"]["source"] == "llm"
        sent = fake.sent_text()
        for secret in ("Arjun", "91234", "Sunita", "98111", "sunita@example.com"):
            assert secret not in sent
        assert "[PHONE_1]" in sent
        assert "[EMAIL_1]" in sent
        assert "Never invent policy numbers" in fake.requests[0]["messages"][0]["content"]
        assert reply["body"] == (
            "Dear Sunita Sharma, we will call you on 98111 22334. [withheld] can be added at "
            "[withheld]."
        )
        assert fake.keys == ["sk-test-server-key-0000"]


async def test_a_long_reply_is_cut_at_a_sentence(api: Api, openai: tuple[FakeOpenAI, str]) -> None:
    fake, _ = openai
    sentence = "A nominee can be changed at any time with a simple form. "
    fake.then(Step(content=sentence * 5))
    async with asker(api) as chat:
        reply = await chat.ask(QUESTION)
        assert reply["body"] == (sentence * 2).strip()


async def test_a_429_with_retry_after_is_retried_and_answered(
    api: Api, openai: tuple[FakeOpenAI, str]
) -> None:
    fake, _ = openai
    fake.then(Step(status=429, retry_after="1"), Step(content="Yes, with the nomination form."))
    async with asker(api) as chat:
        reply = await chat.ask(QUESTION)
        assert reply["body"] == "Yes, with the nomination form."
        assert len(fake.requests) == 2


async def test_llm_down_falls_back_and_the_breaker_opens(
    api: Api, openai: tuple[FakeOpenAI, str]
) -> None:
    fake, _ = openai
    fake.always = Step(status=503)
    async with asker(api) as chat:
        for question in (QUESTION, "नॉमिनी कैसे बदलें?"):
            reply = await chat.ask(question)
            assert reply["meta"]["bot"]["source"] == "fallback"
        assert reply["body"].startswith("माफ़ कीजिए")
        assert len(fake.requests) == 6  # two questions, each tried 3 times
        # Open: the third question does not reach the provider, and is still answered.
        reply = await chat.ask("What is a rider?")
        assert reply["meta"]["bot"]["source"] == "fallback"
        assert reply["body"].startswith("Sorry, I cannot answer that right now")
        assert len(fake.requests) == 6
        # The reply reaches the socket on commit; the assistant counts it a moment later.
        for _ in range(50):
            metrics = await (await api.client.get("/metrics")).text()
            if 'mitra_bot_replies_total{source="fallback"} 3' in metrics:
                break
            await asyncio.sleep(0.05)
        assert "mitra_bot_llm_breaker_state 2" in metrics
        assert 'mitra_bot_replies_total{source="fallback"} 3' in metrics


async def test_a_slow_llm_times_out_into_the_fallback(
    api: Api, openai: tuple[FakeOpenAI, str]
) -> None:
    fake, _ = openai
    fake.always = Step(delay=3.0)
    async with asker(api) as chat:
        reply = await chat.ask(QUESTION)
        assert reply["meta"]["bot"]["source"] == "fallback"


async def test_the_daily_token_budget_stops_the_llm(
    api: Api, openai: tuple[FakeOpenAI, str]
) -> None:
    fake, _ = openai  # 60 tokens an answer; the budget is 100
    async with asker(api) as chat:
        assert (await chat.ask(QUESTION))["meta"]["bot"]["source"] == "llm"
        assert (await chat.ask("What is a rider?"))["meta"]["bot"]["source"] == "llm"
        reply = await chat.ask("What is a surrender value?")
        assert reply["meta"]["bot"]["source"] == "fallback"
        assert len(fake.requests) == 2
        metrics = await (await api.client.get("/metrics")).text()
        assert 'mitra_bot_llm_tokens_total{kind="prompt"} 80' in metrics


async def test_the_model_not_knowing_hands_over(api: Api, openai: tuple[FakeOpenAI, str]) -> None:
    fake, _ = openai
    fake.then(Step(content="HANDOFF"))
    async with asker(api) as chat:
        agent_socket = await ChatClient.connect(api.client, chat.agent.access_token)
        reply = await chat.ask(QUESTION)
        assert reply["body"].startswith("I have asked your agent")
        assert (await agent_socket.expect("escalation"))["reason"] == "low_confidence"
        await agent_socket.close()


async def test_a_tenant_brings_its_own_key_which_is_never_answered(
    api: Api, openai: tuple[FakeOpenAI, str]
) -> None:
    fake, _ = openai
    async with asker(api) as chat:
        url = "/api/v1/integrations/openai"
        body = {"api_key": "sk-tenant-own-key-9876", "model": "gpt-tenant"}
        status, _ = await api.call("PUT", url, json=body, token=chat.agent.access_token)
        assert status == 403
        _, saved = await api.call("PUT", url, json=body, token=chat.admin.access_token, expect=200)
        assert saved["data"]["api_key"] == "…9876"
        _, shown = await api.call("GET", url, token=chat.admin.access_token, expect=200)
        assert "sk-tenant" not in str(shown)
        assert shown["data"]["model"] == "gpt-tenant"
        await chat.ask(QUESTION)
        assert fake.keys == ["sk-tenant-own-key-9876"]
        assert fake.requests[0]["model"] == "gpt-tenant"


async def _source(chat: Any, question: str) -> str:
    source: str = (await chat.ask(question))["meta"]["bot"]["source"]
    return source


@pytest.mark.parametrize(
    "chatbot", [{"breaker_failures": 1, "breaker_cooldown_seconds": 1.0, "max_retries": 0}]
)
async def test_a_trial_call_cut_short_does_not_keep_the_llm_off_for_everyone(
    api: Api, openai: tuple[FakeOpenAI, str]
) -> None:
    fake, _ = openai
    async with asker(api) as chat, asker(api) as spent:
        fake.then(Step(usage=(100, 0)))
        assert await _source(spent, QUESTION) == "llm"  # that agency's day's budget is gone
        fake.then(Step(status=503))
        assert await _source(chat, QUESTION) == "fallback"  # the breaker opens
        await asyncio.sleep(1.1)
        # Past the cool-down, the one trial call is offered to questions that end before any
        # answer: one over its budget (never sent), one the provider refuses (400).
        assert await _source(spent, "What is a rider?") == "fallback"
        fake.then(Step(status=400))
        assert await _source(chat, "What is a rider?") == "fallback"
        assert len(fake.requests) == 3
        # Neither kept the breaker half open: the next question reaches the provider.
        assert await _source(chat, "What is a surrender value?") == "llm"
        assert len(fake.requests) == 4
        metrics = await (await api.client.get("/metrics")).text()
        assert "mitra_bot_llm_breaker_state 0" in metrics


@pytest.mark.parametrize("chatbot", [{"breaker_failures": 1, "max_retries": 0}])
async def test_a_tenants_own_key_out_of_quota_stops_only_that_tenants_llm(
    api: Api, openai: tuple[FakeOpenAI, str]
) -> None:
    fake, _ = openai
    broke = "sk-tenant-no-quota-4321"
    fake.by_key[broke] = Step(status=429, code="insufficient_quota")
    async with asker(api) as own, asker(api) as shared:
        await api.call("PUT", "/api/v1/integrations/openai", json={"api_key": broke},
                       token=own.admin.access_token, expect=200)  # fmt: skip
        assert await _source(own, QUESTION) == "fallback"
        assert await _source(own, "What is a rider?") == "fallback"
        assert fake.keys == [broke]  # its own breaker opened at the first 429
        # The agency on the server's key still gets the model's answers.
        assert await _source(shared, QUESTION) == "llm"
        assert fake.keys == [broke, "sk-test-server-key-0000"]
        metrics = await (await api.client.get("/metrics")).text()
        assert "mitra_bot_llm_breaker_state 0" in metrics


async def test_a_key_that_cannot_travel_in_a_header_is_refused_at_the_edge(
    api: Api, openai: tuple[FakeOpenAI, str]
) -> None:
    url = "/api/v1/integrations/openai"
    admin = await api.tenant()
    await api.call("PUT", url, json={"api_key": "sk-good-key-1234"}, token=admin.access_token,
                   expect=200)  # fmt: skip
    for key in ("sk-tëst-kéy-5678", "sk-proj-\u2019quoted-5678", "sk key with spaces"):
        status, body = await api.call("PUT", url, json={"api_key": key}, token=admin.access_token)
        assert status == 422, key
        assert body["errors"][0]["field"] == "api_key"
    _, shown = await api.call("GET", url, token=admin.access_token, expect=200)
    assert shown["data"]["api_key"] == "…1234"  # the stored key is kept


async def test_a_stored_key_the_sdk_cannot_send_still_gets_the_customer_an_answer(
    api: Api, openai: tuple[FakeOpenAI, str]
) -> None:
    fake, _ = openai
    async with asker(api) as chat:
        # Stored before the edge refused such keys: the SDK fails before any request.
        admin = await principal_of(api, chat.admin)
        await api.app[INTEGRATIONS].put(admin, OPENAI, {"model": "gpt-4o-mini"},
                                        {"api_key": "sk-prøj-ключ-0001"})  # fmt: skip
        reply = await chat.ask(QUESTION)
        assert reply["meta"]["bot"]["source"] == "fallback"
        assert reply["body"].startswith("Sorry, I cannot answer that right now")
        assert fake.requests == []


@pytest.mark.parametrize("chatbot", [{"daily_token_budget": 1000}])
async def test_the_askers_first_name_alone_is_masked_in_any_case_and_in_devanagari(
    api: Api, openai: tuple[FakeOpenAI, str]
) -> None:
    fake, _ = openai
    fake.then(Step(content="Yes [NAME_1], a brother can be a nominee."))
    async with asker(api) as chat:  # the asker is Sunita Sharma
        reply = await chat.ask("this is sunita here. Can my brother be added as nominee?")
        assert reply["body"] == "Yes sunita, a brother can be a nominee."
        for question in (
            "मैं सुनीता हूँ, क्या मेरे भाई को नॉमिनी बना सकते हैं? शर्मा परिवार से",
            "main SUNITA hoon, kya mera bhai nominee ban sakta hai?",
        ):
            assert (await chat.ask(question))["meta"]["bot"]["source"] == "llm"
        sent = fake.sent_text().casefold()
        for secret in ("sunita", "सुनीता", "शर्मा"):
            assert secret not in sent
        assert "नॉमिनी" in sent  # only the name: the question still reaches the model
