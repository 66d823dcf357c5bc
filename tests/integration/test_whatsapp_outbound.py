"""WhatsApp out: members' replies reach Meta's API once, within Meta's rules, and Meta's statuses
move them forward on members' sockets. Meta is a local server speaking the Graph API."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import select, update

from actors.whatsapp_sender import WhatsAppSender
from handlers.keys import (
    CHAT,
    DATABASE,
    SETTINGS,
    STREAMS,
    WHATSAPP_GRAPH,
    WHATSAPP_LEDGER,
    WHATSAPP_METRICS,
    WHATSAPP_SETUP,
)
from mitra.db import Scope, utcnow
from mitra.models import Message, Role, WhatsAppSend
from mitra.settings import Settings
from mitra.whatsapp.pacing import SendPacer
from streams.envelope import Event
from tests.conftest import SettingsFactory
from tests.streams.conftest import eventually
from tests.support.api import Api
from tests.support.fake_graph import FakeGraph
from tests.support.whatsapp import (
    ACCESS_TOKEN,
    PHONE_NUMBER_ID,
    T0,
    WhatsAppTenant,
    customer_conversation,
    post_webhook,
    raw,
    text,
    webhook_body,
    whatsapp_tenant,
)
from tests.support.ws import ChatClient

BUSINESS_ACCOUNT_ID = "102290129340398"
CUSTOMER_WA_ID = "919876543210"
WAIT = 15.0


@pytest.fixture
def settings(make_settings: SettingsFactory, graph: tuple[FakeGraph, str]) -> Settings:
    # 100 a second (Meta's default is 80) keeps the burst test to seconds; the burst is one
    # agent's, so the agent's chat budget (20 per 10 s) is raised out of its way.
    return make_settings(
        whatsapp={"graph_base_url": graph[1], "send_rate_per_second": 100},
        chat={"rate_limit_messages": 10_000},
    )


async def customer_wrote(api: Api, wa: WhatsAppTenant, wamid: str = "wamid.IN1") -> str:
    """The customer writes on WhatsApp; returns their conversation with the agent."""
    _, conversation_id = await customer_conversation(api, wa)
    body = raw(webhook_body([text(wamid, CUSTOMER_WA_ID, "is my policy active?")]))
    assert (await post_webhook(api, wa.webhook, body))[0] == 200
    return conversation_id


async def agent_with_question(api: Api) -> tuple[WhatsAppTenant, str, ChatClient]:
    """A tenant on WhatsApp whose customer just asked something, and the agent's socket in
    their conversation with the question already read."""
    wa = await whatsapp_tenant(api)
    conversation_id = await customer_wrote(api, wa)
    agent = await ChatClient.connect(api.client, wa.agent.access_token)
    await agent.join(conversation_id)
    await agent.expect("message", within=WAIT)
    return wa, conversation_id, agent


def status(wamid: str, state: str, errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": wamid,
        "status": state,
        "timestamp": "1760000100",
        "recipient_id": CUSTOMER_WA_ID,
    }
    if errors:
        item["errors"] = errors
    return item


async def wait_for_send(api: Api, message_id: str, states: set[str]) -> WhatsAppSend:
    async with asyncio.timeout(WAIT):
        while True:
            async with api.app[DATABASE].session(Scope.system()) as session:
                row = await session.scalar(
                    select(WhatsAppSend).where(WhatsAppSend.message_id == uuid.UUID(message_id))
                )
            if row is not None and row.state in states:
                return row
            await asyncio.sleep(0.05)


async def test_a_reply_reaches_meta_once_and_statuses_move_it_forward_on_the_socket(
    api: Api, graph: tuple[FakeGraph, str]
) -> None:
    fake, _ = graph
    wa, conversation_id, agent = await agent_with_question(api)
    ack = await agent.say(conversation_id, "reply-1", "Yes, it is active until March.")
    reply = await agent.expect("message", lambda m: m["client_msg_id"] == "reply-1")
    assert reply["channel"] == "whatsapp"
    send = await wait_for_send(api, ack["message_id"], {"sent"})
    (post,) = fake.message_posts(PHONE_NUMBER_ID)
    assert post.json["to"] == CUSTOMER_WA_ID
    assert post.json["type"] == "text"
    assert post.json["text"]["body"] == "Yes, it is active until March."
    accepted = await agent.expect("status", within=WAIT)
    assert (accepted["seq"], accepted["status"]) == (ack["seq"], "accepted")
    assert send.wamid is not None
    # Meta's statuses, one late and out of order: only forward moves reach the socket.
    for state in ("sent", "delivered", "read", "sent", "delivered"):
        body = raw(webhook_body(statuses=[status(send.wamid, state)]))
        assert (await post_webhook(api, wa.webhook, body))[0] == 200
    # A message from the customer after them (same key, so handled after them) marks the end.
    later = raw(webhook_body([text("wamid.IN2", CUSTOMER_WA_ID, "thanks!", T0 + 200)]))
    assert (await post_webhook(api, wa.webhook, later))[0] == 200
    await agent.expect("message", lambda m: m["body"] == "thanks!", within=WAIT)
    seen = [f["status"] for f in agent.frames if f["type"] == "status"]
    assert seen == ["accepted", "sent", "delivered", "read"]
    assert len(fake.message_posts(PHONE_NUMBER_ID)) == 1
    await agent.close()


async def metrics_text(api: Api) -> str:
    return await (await api.client.get("/metrics")).text()


async def test_a_status_that_overtakes_metas_answer_to_the_post_is_applied_once_recorded(
    api: Api, graph: tuple[FakeGraph, str]
) -> None:
    fake, _ = graph
    wa, conversation_id, agent = await agent_with_question(api)
    # Meta took the message and reports it delivered before its answer to the POST arrives.
    fake.hold_answers()
    ack = await agent.say(conversation_id, "overtaken", "Your premium is paid.")
    await eventually(lambda: len(fake.sent) == 1, within=WAIT)
    early = raw(webhook_body(statuses=[status(fake.sent[0].wamid, "delivered")]))
    assert (await post_webhook(api, wa.webhook, early))[0] == 200

    async def seen_early() -> bool:
        return 'outcome="early"' in await metrics_text(api)

    await eventually(seen_early, within=WAIT)
    fake.answer_held()
    delivered = await agent.expect("status", lambda f: f["status"] == "delivered", within=WAIT)
    assert delivered["seq"] == ack["seq"]
    assert [f["status"] for f in agent.frames if f["type"] == "status"] == [
        "accepted",
        "delivered",
    ]
    row = await wait_for_send(api, ack["message_id"], {"sent"})
    assert row.status == "delivered"
    # A status about a message Mitra never sent is dropped at once, not waited on.
    foreign = raw(webhook_body(statuses=[status("wamid.NOT-OURS", "read")]))
    assert (await post_webhook(api, wa.webhook, foreign))[0] == 200

    async def dropped() -> bool:
        return '{outcome="not_ours",status="read"}' in await metrics_text(api)

    await eventually(dropped, within=WAIT)
    await agent.close()


async def test_a_failed_status_reaches_the_socket_with_metas_code_and_title(
    api: Api, graph: tuple[FakeGraph, str]
) -> None:
    wa, conversation_id, agent = await agent_with_question(api)
    ack = await agent.say(conversation_id, "undeliverable", "Your renewal is due.")
    send = await wait_for_send(api, ack["message_id"], {"sent"})
    assert send.wamid is not None
    # Meta took the message, then could not deliver it (the number is not on WhatsApp).
    error = {
        "code": 131026,
        "title": "Message undeliverable",
        "message": "Message undeliverable",
        "error_data": {"details": "Message Undeliverable."},
        "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
    }
    body = raw(webhook_body(statuses=[status(send.wamid, "failed", [error])]))  # fmt: skip
    assert (await post_webhook(api, wa.webhook, body))[0] == 200
    failed = await agent.expect("status", lambda f: f["status"] == "failed", within=WAIT)
    assert (failed["conversation_id"], failed["seq"]) == (conversation_id, ack["seq"])
    assert failed["error"] == {"code": 131026, "title": "Message undeliverable"}
    # A late `delivered` cannot bring a failed message back.
    late = raw(webhook_body(statuses=[status(send.wamid, "delivered")]))
    assert (await post_webhook(api, wa.webhook, late))[0] == 200
    after = raw(webhook_body([text("wamid.IN9", CUSTOMER_WA_ID, "hello?", T0 + 300)]))
    assert (await post_webhook(api, wa.webhook, after))[0] == 200
    await agent.expect("message", lambda m: m["body"] == "hello?", within=WAIT)
    assert [f["status"] for f in agent.frames if f["type"] == "status"] == ["accepted", "failed"]
    await agent.close()


async def test_outside_the_window_free_text_is_refused_up_front_and_templates_still_go(
    api: Api, graph: tuple[FakeGraph, str]
) -> None:
    fake, _ = graph
    wa, conversation_id, agent = await agent_with_question(api)
    # A day and an hour pass: the customer's message is older than Meta's window.
    async with api.app[DATABASE].transaction(Scope.system()) as session:
        await session.execute(
            update(Message)
            .where(Message.conversation_id == uuid.UUID(conversation_id))
            .values(sent_at=utcnow() - timedelta(hours=25))
        )
    api.app[CHAT].passivate(wa.tenant_id, uuid.UUID(conversation_id))
    await agent.send(
        {
            "type": "send",
            "conversation_id": conversation_id,
            "client_msg_id": "too-late",
            "body": "are you there?",
        }
    )
    refused = await agent.expect("error", lambda e: e["ref"] == "too-late", within=WAIT)
    assert refused["code"] == "outside_window"
    assert "/api/v1/whatsapp/messages" in refused["message"]
    status_code, body = await api.call(
        "POST",
        f"/api/v1/conversations/{conversation_id}/messages",
        token=wa.agent.access_token,
        json={"client_msg_id": "too-late-rest", "body": "hello?"},
    )
    assert status_code == 422
    assert "24 hours" in body["message"]
    _, customers = await api.call("GET", "/api/v1/customers", token=wa.agent.access_token)
    customer_id = customers["data"]["items"][0]["id"]
    _, sent = await api.call(
        "POST",
        "/api/v1/whatsapp/messages",
        token=wa.agent.access_token,
        json={
            "customer_id": customer_id,
            "template": "premium_due",
            "language": "en_US",
            "parameters": ["Ravi", "12 March"],
        },
        expect=201,
    )
    assert sent["data"]["channel"] == "whatsapp"
    await wait_for_send(api, sent["data"]["message_id"], {"sent"})
    (post,) = fake.message_posts(PHONE_NUMBER_ID)
    assert post.json["type"] == "template"
    assert post.json["template"]["name"] == "premium_due"
    params = post.json["template"]["components"][0]["parameters"]
    assert [p["text"] for p in params] == ["Ravi", "12 March"]
    await agent.close()


async def test_the_window_counts_from_metas_timestamp_not_from_a_late_delivery(
    api: Api, graph: tuple[FakeGraph, str]
) -> None:
    fake, _ = graph
    wa = await whatsapp_tenant(api)
    _, conversation_id = await customer_conversation(api, wa)
    agent = await ChatClient.connect(api.client, wa.agent.access_token)
    await agent.join(conversation_id)
    # Meta retried this webhook for a day: the customer wrote 25 hours ago, it arrives now.
    day_old = int(time.time()) - 25 * 3600
    late = raw(webhook_body([text("wamid.LATE", CUSTOMER_WA_ID, "hello?", day_old)]))
    assert (await post_webhook(api, wa.webhook, late))[0] == 200
    await agent.expect("message", within=WAIT)

    async def refused(ref: str) -> None:
        frame = {"type": "send", "conversation_id": conversation_id, "client_msg_id": ref,
                 "body": "are you still there?"}  # fmt: skip
        await agent.send(frame)
        error = await agent.expect("error", lambda e: e["ref"] == ref, within=WAIT)
        assert error["code"] == "outside_window"

    await refused("after-late")
    # The same once the conversation's actor is rebuilt from the database.
    api.app[CHAT].passivate(wa.tenant_id, uuid.UUID(conversation_id))
    await refused("after-reload")
    # The customer writes again: now the window is open.
    fresh = raw(webhook_body([text("wamid.FRESH", CUSTOMER_WA_ID, "hi", int(time.time()))]))
    assert (await post_webhook(api, wa.webhook, fresh))[0] == 200
    await agent.expect("message", lambda m: m["body"] == "hi", within=WAIT)
    ack = await agent.say(conversation_id, "in-window", "Hello Ravi, how can I help?")
    await wait_for_send(api, ack["message_id"], {"sent"})
    assert len(fake.message_posts(PHONE_NUMBER_ID)) == 1
    await agent.close()


async def test_temporary_refusals_are_retried_and_permanent_ones_fail_with_metas_code(
    api: Api, graph: tuple[FakeGraph, str]
) -> None:
    fake, _ = graph
    wa, conversation_id, agent = await agent_with_question(api)
    fake.fail_next("rate_limited", times=1, retry_after="0")
    fake.fail_next("server_error", times=1)
    retried = await agent.say(conversation_id, "retried", "first reply")
    await wait_for_send(api, retried["message_id"], {"sent"})
    assert len(fake.message_posts(PHONE_NUMBER_ID)) == 3  # two refused, one taken
    assert len(fake.sent) == 1
    fake.fail_next("outside_window", times=1)
    refused = await agent.say(conversation_id, "refused", "second reply")
    row = await wait_for_send(api, refused["message_id"], {"failed"})
    assert (row.status, row.error_code) == ("failed", 131047)
    failed = await agent.expect(
        "status", lambda f: f["seq"] == refused["seq"] and f["status"] == "failed", within=WAIT
    )
    assert failed["error"]["code"] == 131047
    assert len(fake.message_posts(PHONE_NUMBER_ID)) == 4  # no retry of a permanent refusal
    # The dashboard counts failures by Meta's code.
    async with asyncio.timeout(WAIT):
        while True:
            _, board = await api.call(
                "GET", "/api/v1/analytics/dashboard", token=wa.admin.access_token, expect=200
            )
            failures = board["data"]["breakdown"].get("messages_failed", {})
            if failures:
                break
            await asyncio.sleep(0.05)
    assert failures == {"whatsapp/131047": {"count": 1, "amount": None}}
    await agent.close()


async def test_a_send_in_flight_at_a_crash_is_reported_unknown_and_never_posted_again(
    api: Api, graph: tuple[FakeGraph, str]
) -> None:
    fake, _ = graph
    wa, conversation_id, agent = await agent_with_question(api)
    ack = await agent.say(conversation_id, "once", "only once")
    row = await wait_for_send(api, ack["message_id"], {"sent"})
    # The instance that POSTed died before recording the answer: its record says `posting`.
    async with api.app[DATABASE].transaction(Scope.system()) as session:
        await session.execute(
            update(WhatsAppSend).where(WhatsAppSend.id == row.id).values(state="posting")
        )
    message = (await api.call(
        "GET", f"/api/v1/conversations/{conversation_id}/messages", token=wa.agent.access_token
    ))[1]["data"][-1]  # fmt: skip
    sender = WhatsAppSender(
        api.app[STREAMS],
        setup=api.app[WHATSAPP_SETUP],
        ledger=api.app[WHATSAPP_LEDGER],
        graph=api.app[WHATSAPP_GRAPH],
        pacer=SendPacer(),
        metrics=api.app[WHATSAPP_METRICS],
    )
    redelivered = Event(
        type="whatsapp.send", tenant_id=str(wa.tenant_id), key=conversation_id, payload=message
    )
    await sender.handle(redelivered)
    await sender.handle(redelivered)
    after = await wait_for_send(api, ack["message_id"], {"unknown"})
    assert after.status == "unknown"
    assert len(fake.message_posts(PHONE_NUMBER_ID)) == 1
    unknown = await agent.expect("status", lambda f: f["status"] == "unknown", within=WAIT)
    assert unknown["seq"] == ack["seq"]
    await agent.close()


async def test_a_second_instance_sending_for_the_same_number_halves_each_ones_rate(
    api: Api, graph: tuple[FakeGraph, str]
) -> None:
    # Meta's limit is per number, and both instances send for it: each takes its partitions'
    # share of whatsapp.outbound (here 3 of 6), so together they stay at 80 a second.
    fake, _ = graph
    wa, conversation_id, agent = await agent_with_question(api)
    ack = await agent.say(conversation_id, "shared", "two senders")
    await wait_for_send(api, ack["message_id"], {"sent"})
    message = (await api.call(
        "GET", f"/api/v1/conversations/{conversation_id}/messages", token=wa.agent.access_token
    ))[1]["data"][-1]  # fmt: skip
    pacer = SendPacer(80.0)
    other = WhatsAppSender(
        api.app[STREAMS],
        setup=api.app[WHATSAPP_SETUP],
        ledger=api.app[WHATSAPP_LEDGER],
        graph=api.app[WHATSAPP_GRAPH],
        pacer=pacer,
        metrics=api.app[WHATSAPP_METRICS],
    )
    await other.start()
    try:
        # A redelivery, which it recognises as sent: its share is taken, nothing is posted.
        await other.handle(
            Event(type="whatsapp.send", tenant_id=str(wa.tenant_id), key=conversation_id,
                  payload=message)
        )  # fmt: skip
        assert pacer.rate_per_second == 40.0
        assert len(fake.message_posts(PHONE_NUMBER_ID)) == 1
    finally:
        await other.stop()
    await agent.close()


async def test_a_customers_media_streams_from_meta_to_members_only(
    api: Api, graph: tuple[FakeGraph, str]
) -> None:
    fake, _ = graph
    wa = await whatsapp_tenant(api)
    conversation_id = await customer_wrote(api, wa)
    content = bytes(range(256)) * 40  # 10 KiB, several chunks
    fake.add_media("1037543291543636", content, "application/pdf", ACCESS_TOKEN)
    document = {
        "from": CUSTOMER_WA_ID,
        "id": "wamid.DOC1",
        "timestamp": "1760000300",
        "type": "document",
        "document": {
            "id": "1037543291543636",
            "mime_type": "application/pdf",
            "filename": "rc.pdf",
        },
    }
    assert (await post_webhook(api, wa.webhook, raw(webhook_body([document]))))[0] == 200
    agent = await ChatClient.connect(api.client, wa.agent.access_token)
    await agent.join(conversation_id)
    frame = await agent.expect("message", lambda m: m["body"] == "rc.pdf", within=WAIT)
    assert frame["meta"]["media"]["id"] == "1037543291543636"
    response = await api.client.get(
        f"/api/v1/messages/{frame['message_id']}/media", headers=wa.agent.headers
    )
    assert response.status == 200
    assert response.content_type == "application/pdf"
    assert await response.read() == content
    outsider = await api.user(wa.admin, Role.SENIOR_AGENT)
    response = await api.client.get(
        f"/api/v1/messages/{frame['message_id']}/media", headers=outsider.headers
    )
    assert response.status == 404
    await agent.close()


async def with_business_account(api: Api, wa: WhatsAppTenant) -> None:
    """The tenant's integration names its WhatsApp Business Account: templates can be synced."""
    await api.call(
        "PUT",
        "/api/v1/integrations/whatsapp",
        token=wa.admin.access_token,
        json={
            "phone_number_id": PHONE_NUMBER_ID,
            "business_number": "+919820000001",
            "business_account_id": BUSINESS_ACCOUNT_ID,
            "default_agent_id": wa.agent.user_id,
        },
        expect=200,
    )


async def test_templates_sync_from_meta_and_a_send_is_checked_against_them(
    api: Api, graph: tuple[FakeGraph, str]
) -> None:
    fake, _ = graph
    wa = await whatsapp_tenant(api)
    fake.add_business_account(
        BUSINESS_ACCOUNT_ID,
        ACCESS_TOKEN,
        [
            {"id": "9001", "name": "premium_due", "language": "en_US", "status": "APPROVED",
             "category": "UTILITY",
             "components": [{"type": "BODY", "text": "Dear {{1}}, your premium is due {{2}}."}]},
            {"id": "9002", "name": "new_plan", "language": "hi", "status": "PENDING",
             "category": "MARKETING", "components": [{"type": "BODY", "text": "नमस्ते {{1}}"}]},
        ],
    )  # fmt: skip
    status_code, _ = await api.call(
        "POST", "/api/v1/whatsapp/templates/sync", token=wa.admin.access_token
    )
    assert status_code == 422  # no business account id yet
    await with_business_account(api, wa)
    status_code, _ = await api.call(
        "POST", "/api/v1/whatsapp/templates/sync", token=wa.agent.access_token
    )
    assert status_code == 403
    _, synced = await api.call(
        "POST", "/api/v1/whatsapp/templates/sync", token=wa.admin.access_token, expect=200
    )
    assert [(t["name"], t["status"], t["body_parameters"]) for t in synced["data"]] == [
        ("new_plan", "PENDING", 1),
        ("premium_due", "APPROVED", 2),
    ]
    _, listed = await api.call(
        "GET", "/api/v1/whatsapp/templates", token=wa.agent.access_token, expect=200
    )
    assert listed["data"] == synced["data"]
    _, customer = await api.call(
        "POST",
        "/api/v1/customers",
        token=wa.agent.access_token,
        json={"full_name": "Ravi Kumar", "phone": "+91 98765 43210"},
        expect=201,
    )
    send = {"customer_id": customer["data"]["id"], "language": "en_US"}
    for wrong, field in (
        ({"template": "premium_due", "parameters": ["Ravi"]}, "parameters"),
        ({"template": "new_plan", "language": "hi", "parameters": ["Ravi"]}, "template"),
        ({"template": "no_such", "parameters": []}, "template"),
    ):
        status_code, body = await api.call(
            "POST",
            "/api/v1/whatsapp/messages",
            token=wa.agent.access_token,
            json={**send, **wrong},
        )
        assert (status_code, body["errors"][0]["field"]) == (422, field)
    assert fake.message_posts(PHONE_NUMBER_ID) == []


async def test_a_templates_header_text_or_media_reaches_meta_checked_against_the_sync(
    api: Api, graph: tuple[FakeGraph, str]
) -> None:
    fake, _ = graph
    wa = await whatsapp_tenant(api)
    fake.add_business_account(
        BUSINESS_ACCOUNT_ID,
        ACCESS_TOKEN,
        [
            {"id": "9101", "name": "premium_receipt", "language": "en", "status": "APPROVED",
             "category": "UTILITY",
             "components": [{"type": "HEADER", "format": "TEXT", "text": "Receipt {{1}}"},
                            {"type": "BODY", "text": "Dear {{1}}, we received your premium."}]},
            {"id": "9102", "name": "policy_document", "language": "en", "status": "APPROVED",
             "category": "UTILITY",
             "components": [{"type": "HEADER", "format": "DOCUMENT"},
                            {"type": "BODY", "text": "Your policy {{1}} is attached."}]},
        ],
    )  # fmt: skip
    await with_business_account(api, wa)
    await api.call("POST", "/api/v1/whatsapp/templates/sync", token=wa.admin.access_token,
                   expect=200)  # fmt: skip
    customer_id, _ = await customer_conversation(api, wa)
    receipt = {"customer_id": customer_id, "template": "premium_receipt", "language": "en",
               "parameters": ["Ravi"]}  # fmt: skip
    document = {"customer_id": customer_id, "template": "policy_document", "language": "en",
                "parameters": ["JA-1042"]}  # fmt: skip
    pdf = {"kind": "document", "link": "https://files.example.com/JA-1042.pdf",
           "filename": "JA-1042.pdf"}  # fmt: skip
    for wrong, field in (
        ({**receipt}, "header_parameters"),  # the sync says its header takes one
        ({**receipt, "header_parameters": ["A" * 61]}, "header_parameters.0"),
        ({**receipt, "header_parameters": ["No\t7"]}, "header_parameters[0]"),
        ({**document, "header_parameters": ["x"]}, "header_parameters"),
        ({**document, "header_media": {**pdf, "kind": "audio"}}, "header_media.kind"),
    ):
        status_code, body = await api.call(
            "POST", "/api/v1/whatsapp/messages", token=wa.agent.access_token, json=wrong
        )
        assert status_code == 422, (field, body)
        assert body["errors"][0]["field"] == field, body
    sent = []
    for good in ({**receipt, "header_parameters": ["No. 7781"]}, {**document, "header_media": pdf}):
        _, body = await api.call(
            "POST", "/api/v1/whatsapp/messages", token=wa.agent.access_token, json=good,
            expect=201,
        )  # fmt: skip
        sent.append(body["data"])
    assert sent[0]["body"] == "[template premium_receipt] No. 7781 | Ravi"
    for message in sent:
        await wait_for_send(api, message["message_id"], {"sent"})
    posts = [p.json["template"] for p in fake.message_posts(PHONE_NUMBER_ID)]
    assert posts[0]["components"] == [
        {"type": "header", "parameters": [{"type": "text", "text": "No. 7781"}]},
        {"type": "body", "parameters": [{"type": "text", "text": "Ravi"}]},
    ]
    assert posts[1]["components"][0] == {
        "type": "header",
        "parameters": [{"type": "document", "document": {
            "link": "https://files.example.com/JA-1042.pdf", "filename": "JA-1042.pdf"}}],
    }  # fmt: skip
    # A header belongs to a template only.
    not_a_template = {"customer_id": customer_id, "media": pdf, "header_parameters": ["x"]}
    _, body = await api.call(
        "POST", "/api/v1/whatsapp/messages", token=wa.agent.access_token, json=not_a_template,
        expect=422,
    )  # fmt: skip
    assert "belong to a template" in body["errors"][0]["message"]
    assert len(fake.message_posts(PHONE_NUMBER_ID)) == 2


async def test_buttons_lists_and_media_go_within_the_window_and_meta_limits_are_named(
    api: Api, graph: tuple[FakeGraph, str]
) -> None:
    fake, _ = graph
    wa, _, agent = await agent_with_question(api)
    _, customers = await api.call("GET", "/api/v1/customers", token=wa.agent.access_token)
    customer_id = customers["data"]["items"][0]["id"]

    async def send(**kind: Any) -> tuple[int, dict[str, Any]]:
        return await api.call(
            "POST",
            "/api/v1/whatsapp/messages",
            token=wa.agent.access_token,
            json={"customer_id": customer_id, **kind},
        )

    buttons = {
        "body": "Pay your premium now?",
        "buttons": [{"id": "pay", "title": "Pay now"}, {"id": "later", "title": "Remind me"}],
    }
    listing = {
        "body": "Which policy?",
        "list": {
            "button": "Policies",
            "sections": [
                {"rows": [{"id": "p1", "title": "Jeevan Anand", "description": "due 12 March"}]}
            ],
        },
    }
    media = {"media": {"kind": "document", "link": "https://files.example.com/rc.pdf",
                       "caption": "Your receipt", "filename": "receipt.pdf"}}  # fmt: skip
    sent = []
    for kind in (buttons, listing, media):
        status_code, body = await send(**kind)
        assert status_code == 201, body
        sent.append(body["data"])
    assert sent[0]["body"] == "Pay your premium now? [Pay now | Remind me]"
    for message in sent:
        await wait_for_send(api, message["message_id"], {"sent"})
    posts = [p.json for p in fake.message_posts(PHONE_NUMBER_ID)]
    assert [p["type"] for p in posts] == ["interactive", "interactive", "document"]
    assert [b["reply"]["title"] for b in posts[0]["interactive"]["action"]["buttons"]] == [
        "Pay now",
        "Remind me",
    ]
    assert posts[1]["interactive"]["action"]["sections"][0]["rows"][0]["id"] == "p1"
    assert posts[2]["document"] == {
        "link": "https://files.example.com/rc.pdf",
        "caption": "Your receipt",
        "filename": "receipt.pdf",
    }
    # Meta's limits are refused here, with the field named, before anything is stored.
    too_long = {"body": "?", "buttons": [{"id": "x", "title": "a title of more than twenty"}]}
    status_code, body = await send(**too_long)
    assert status_code == 422
    assert body["errors"][0]["field"].startswith("buttons")
    status_code, body = await send(**buttons, **media)
    assert status_code == 422
    assert len(fake.message_posts(PHONE_NUMBER_ID)) == 3
    await agent.close()


@pytest.mark.parametrize("rate", [100])
async def test_a_burst_of_500_replies_is_held_to_the_numbers_rate(
    api: Api, graph: tuple[FakeGraph, str], app: web.Application, rate: int
) -> None:
    fake, _ = graph
    wa, conversation_id, agent = await agent_with_question(api)
    limiter = asyncio.Semaphore(25)
    stored: dict[int, str] = {}

    async def reply(n: int) -> None:
        async with limiter:
            _, body = await api.call(
                "POST",
                f"/api/v1/conversations/{conversation_id}/messages",
                token=wa.agent.access_token,
                json={"client_msg_id": f"burst-{n}", "body": f"reply {n}"},
                expect=201,
            )
            stored[body["data"]["seq"]] = body["data"]["body"]

    await asyncio.gather(*(reply(n) for n in range(500)))
    await eventually(lambda: len(fake.sent) >= 500, within=60)
    posts = sorted(p.at for p in fake.message_posts(PHONE_NUMBER_ID))
    assert len(posts) == 500
    # In no second did more leave than the rate allows after the burst.
    burst = app[SETTINGS].whatsapp.send_burst
    busiest = max(sum(1 for t in posts[i:] if t < start + 1.0) for i, start in enumerate(posts))
    assert busiest <= rate + burst
    # A conversation's messages leave in seq order.
    bodies = [p.json["text"]["body"] for p in fake.message_posts(PHONE_NUMBER_ID)]
    assert bodies == [stored[seq] for seq in sorted(stored)]
    await agent.close()
