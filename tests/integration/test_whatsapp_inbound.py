"""WhatsApp in: the tenant's integration, Meta's handshake, signed webhooks, and customers'
messages arriving once, in order, in the conversation their agent already uses."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

from sqlalchemy import text as sql

from handlers.app import create_app
from handlers.keys import DATABASE
from mitra.db import Scope
from mitra.models import Role
from mitra.whatsapp.webhook import sign
from streams.murmur2 import partition_for
from streams.topics import WHATSAPP_INBOUND
from tests.conftest import SettingsFactory
from tests.streams.conftest import eventually
from tests.support.api import Api
from tests.support.whatsapp import (
    ACCESS_TOKEN,
    APP_SECRET,
    T0,
    VERIFY_TOKEN,
    WhatsAppTenant,
    customer_conversation,
    post_webhook,
    raw,
    text,
    webhook_body,
    whatsapp_tenant,
)
from tests.support.ws import ChatClient

CUSTOMER_WA_ID = "919876543210"


async def history(api: Api, wa: WhatsAppTenant, conversation_id: str) -> list[dict[str, Any]]:
    _, body = await api.call(
        "GET",
        f"/api/v1/conversations/{conversation_id}/messages",
        token=wa.agent.access_token,
        expect=200,
    )
    messages: list[dict[str, Any]] = body["data"]
    return messages


# ---- the integration ---------------------------------------------------------------------------


async def test_the_integration_is_shown_masked_and_its_secrets_are_sealed_at_rest(
    api: Api,
) -> None:
    wa = await whatsapp_tenant(api)
    response = await api.client.get("/api/v1/integrations/whatsapp", headers=wa.admin.headers)
    shown = await response.text()
    assert response.status == 200
    for secret in (ACCESS_TOKEN, APP_SECRET, VERIFY_TOKEN):
        assert secret not in shown
    data = json.loads(shown)["data"]
    assert data["access_token"] == "…" + ACCESS_TOKEN[-4:]
    assert data["phone_number_id"] == "106540352242922"
    assert data["business_number"] == "+919820000001"
    assert data["webhook_path"] == wa.webhook
    async with api.app[DATABASE].session(Scope.system()) as session:
        stored = (await session.execute(sql("SELECT secrets FROM tenant_integrations"))).scalar()
    assert isinstance(stored, bytes)
    for secret in (ACCESS_TOKEN, APP_SECRET, VERIFY_TOKEN):
        assert secret.encode() not in stored


async def test_only_admins_manage_it_and_the_default_agent_must_be_staff(api: Api) -> None:
    wa = await whatsapp_tenant(api)
    status, _ = await api.call("GET", "/api/v1/integrations/whatsapp", token=wa.agent.access_token)
    assert status == 403
    holder = await api.register(wa.admin.tenant_slug)
    status, body = await api.call(
        "PUT",
        "/api/v1/integrations/whatsapp",
        token=wa.admin.access_token,
        json={
            "phone_number_id": "106540352242922",
            "business_number": "+919820000001",
            "default_agent_id": holder.user_id,
        },
    )
    assert status == 422
    assert body["errors"][0]["field"] == "default_agent_id"


async def test_a_first_setup_needs_every_secret_and_a_later_one_keeps_them(api: Api) -> None:
    admin = await api.tenant()
    agent = await api.user(admin, Role.JUNIOR_AGENT)
    setup = {
        "phone_number_id": "106540352242922",
        "business_number": "+919820000001",
        "default_agent_id": agent.user_id,
    }
    status, body = await api.call(
        "PUT", "/api/v1/integrations/whatsapp", token=admin.access_token, json=setup
    )
    assert status == 422
    assert body["errors"][0]["field"] == "access_token"
    wa = await whatsapp_tenant(api)
    # A change of default agent without the secrets: the stored ones still sign and verify.
    status, _ = await api.call(
        "PUT",
        "/api/v1/integrations/whatsapp",
        token=wa.admin.access_token,
        json={**setup, "default_agent_id": wa.admin.user_id},
    )
    assert status == 200
    status, _ = await post_webhook(api, wa.webhook, raw(webhook_body([])), APP_SECRET)
    assert status == 200


# ---- Meta's verification handshake --------------------------------------------------------------


async def test_the_handshake_echoes_the_challenge_only_for_the_tenants_token(api: Api) -> None:
    wa = await whatsapp_tenant(api)
    query = {
        "hub.mode": "subscribe",
        "hub.verify_token": VERIFY_TOKEN,
        "hub.challenge": "1158201444",
    }
    response = await api.client.get(wa.webhook, params=query)
    assert (response.status, await response.text()) == (200, "1158201444")
    assert response.content_type == "text/plain"
    for wrong in (
        {**query, "hub.verify_token": "not-the-token"},
        {**query, "hub.mode": "unsubscribe"},
    ):
        assert (await api.client.get(wa.webhook, params=wrong)).status == 403
    other_tenant = f"/api/v1/webhooks/whatsapp/{uuid.uuid4()}"
    assert (await api.client.get(other_tenant, params=query)).status == 403


# ---- signatures ---------------------------------------------------------------------------------


async def test_unsigned_forged_or_reserialised_bodies_are_refused_and_nothing_is_kept(
    api: Api,
) -> None:
    wa = await whatsapp_tenant(api)
    _, conversation_id = await customer_conversation(api, wa)
    body = webhook_body([text("wamid.forged", CUSTOMER_WA_ID, 'नमस्ते 🙏 \u2028 "hi"')])
    signed_bytes = raw(body)
    # The same document re-serialised (escaped non-ASCII, spaces): not the bytes Meta signed.
    reserialised = json.dumps(body).encode()
    assert reserialised != signed_bytes
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": ""}
    attempts = [
        (signed_bytes, None),
        (signed_bytes, sign(signed_bytes, "someone-elses-secret")),
        (reserialised, sign(signed_bytes, APP_SECRET)),
        (signed_bytes, "sha1=" + sign(signed_bytes, APP_SECRET)[7:]),
    ]
    for data, signature in attempts:
        sent = (
            {**headers, "X-Hub-Signature-256": signature}
            if signature
            else {"Content-Type": "application/json"}
        )
        response = await api.client.post(wa.webhook, data=data, headers=sent)
        assert response.status == 401, signature
    unknown = f"/api/v1/webhooks/whatsapp/{uuid.uuid4()}"
    assert (await post_webhook(api, unknown, signed_bytes))[0] == 401
    # The genuine bytes, properly signed, get through; only then is the message stored.
    assert (await post_webhook(api, wa.webhook, signed_bytes))[0] == 200
    agent_socket = await ChatClient.connect(api.client, wa.agent.access_token)
    await agent_socket.join(conversation_id)
    stored = await agent_socket.expect("message", within=10)
    assert stored["body"] == 'नमस्ते 🙏 \u2028 "hi"'
    assert [m["external_id"] for m in await history(api, wa, conversation_id)] == ["wamid.forged"]
    await agent_socket.close()


# ---- customers' messages ------------------------------------------------------------------------


async def test_a_signed_message_reaches_the_agents_socket_once_in_the_customers_conversation(
    api: Api,
) -> None:
    wa = await whatsapp_tenant(api)
    customer_id, conversation_id = await customer_conversation(api, wa)
    agent_socket = await ChatClient.connect(api.client, wa.agent.access_token)
    await agent_socket.join(conversation_id)
    first = raw(webhook_body([text("wamid.A1", CUSTOMER_WA_ID, "when is my premium due?")]))
    assert await post_webhook(api, wa.webhook, first) == (200, "ok")
    message = await agent_socket.expect("message", within=10)
    assert message["conversation_id"] == conversation_id
    assert (message["seq"], message["body"]) == (1, "when is my premium due?")
    assert (message["channel"], message["sender_type"]) == ("whatsapp", "customer")
    assert message["sender_id"] is None
    assert message["external_id"] == "wamid.A1"
    # Meta redelivers: the same body twice more, then a new message from the same customer.
    assert (await post_webhook(api, wa.webhook, first))[0] == 200
    assert (await post_webhook(api, wa.webhook, first))[0] == 200
    second = raw(webhook_body([text("wamid.A2", CUSTOMER_WA_ID, "thanks", T0 + 100)]))
    assert (await post_webhook(api, wa.webhook, second))[0] == 200
    following = await agent_socket.expect("message", within=10)
    assert (following["seq"], following["external_id"]) == (2, "wamid.A2")
    stored = await history(api, wa, conversation_id)
    assert [(m["seq"], m["external_id"]) for m in stored] == [(1, "wamid.A1"), (2, "wamid.A2")]
    _, customers = await api.call(
        "GET", "/api/v1/customers", token=wa.agent.access_token, expect=200
    )
    assert [c["id"] for c in customers["data"]["items"]] == [customer_id]
    await agent_socket.close()


async def test_replies_locations_and_contact_cards_reach_the_agents_socket_as_messages(
    api: Api,
) -> None:
    wa = await whatsapp_tenant(api)
    _, conversation_id = await customer_conversation(api, wa)
    agent_socket = await ChatClient.connect(api.client, wa.agent.access_token)
    await agent_socket.join(conversation_id)

    def message(wamid: str, offset: int, kind: str, **content: Any) -> dict[str, Any]:
        return {"from": CUSTOMER_WA_ID, "id": wamid, "timestamp": str(T0 + offset),
                "type": kind, **content}  # fmt: skip

    # Shaped as Meta sends them: a reply to the agent's buttons and to their list (each naming
    # the message it answers in `context`), a shared place, and a contact card.
    button = message(
        "wamid.BTN", 1, "interactive",
        context={"from": "919820000001", "id": "wamid.ASKED-BUTTONS"},
        interactive={"type": "button_reply", "button_reply": {"id": "pay", "title": "Pay now"}},
    )  # fmt: skip
    row = message(
        "wamid.ROW", 2, "interactive",
        context={"from": "919820000001", "id": "wamid.ASKED-LIST"},
        interactive={"type": "list_reply", "list_reply": {
            "id": "p2", "title": "Jeevan Anand", "description": "due 12 March"}},
    )  # fmt: skip
    place = message(
        "wamid.LOC", 3, "location",
        location={"latitude": 19.0760, "longitude": 72.8777, "name": "LIC Building",
                  "address": "Nariman Point, Mumbai"},
    )  # fmt: skip
    card = message(
        "wamid.VCF", 4, "contacts",
        contacts=[{"name": {"first_name": "Sunita", "formatted_name": "Sunita Rao"},
                   "phones": [{"phone": "+91 98111 22233", "wa_id": "919811122233",
                               "type": "CELL"}]}],
    )  # fmt: skip
    body = webhook_body([card, place, row, button])
    assert (await post_webhook(api, wa.webhook, raw(body)))[0] == 200
    got = {}
    for _ in range(4):
        frame = await agent_socket.expect("message", within=10)
        got[frame["external_id"]] = frame
    assert list(got) == ["wamid.BTN", "wamid.ROW", "wamid.LOC", "wamid.VCF"]
    assert [f["seq"] for f in got.values()] == [1, 2, 3, 4]
    assert all(f["sender_type"] == "customer" and f["channel"] == "whatsapp" for f in got.values())
    assert got["wamid.BTN"]["body"] == "Pay now"
    assert got["wamid.BTN"]["meta"]["reply_to"] == "wamid.ASKED-BUTTONS"
    assert got["wamid.BTN"]["meta"]["reply"] == {"type": "button_reply", "id": "pay",
                                                  "title": "Pay now"}  # fmt: skip
    assert got["wamid.ROW"]["body"] == "Jeevan Anand — due 12 March"
    assert got["wamid.ROW"]["meta"]["reply_to"] == "wamid.ASKED-LIST"
    assert got["wamid.ROW"]["meta"]["reply"]["id"] == "p2"
    assert got["wamid.LOC"]["body"] == "📍 LIC Building, Nariman Point, Mumbai"
    assert got["wamid.LOC"]["meta"]["location"]["latitude"] == 19.0760
    assert got["wamid.VCF"]["body"] == "👤 Sunita Rao +91 98111 22233"
    assert got["wamid.VCF"]["meta"]["contacts"] == [
        {"name": "Sunita Rao", "phones": ["+91 98111 22233"]}
    ]
    await agent_socket.close()


async def test_one_senders_messages_keep_metas_order_within_a_batch(api: Api) -> None:
    wa = await whatsapp_tenant(api)
    _, conversation_id = await customer_conversation(api, wa)
    later = text("wamid.B2", CUSTOMER_WA_ID, "second", T0 + 50)
    earlier = text("wamid.B1", CUSTOMER_WA_ID, "first", T0 + 40)
    other = text("wamid.C1", "919811111111", "someone new", T0 + 45)
    body = webhook_body([later, other, earlier], names={"919811111111": "Meena Iyer"})
    assert (await post_webhook(api, wa.webhook, raw(body)))[0] == 200
    agent_socket = await ChatClient.connect(api.client, wa.agent.access_token)
    await agent_socket.join(conversation_id)
    got = [await agent_socket.expect("message", within=10) for _ in range(2)]
    assert [m["body"] for m in got] == ["first", "second"]

    # A number nobody knows becomes a customer of the default agent, with its own conversation
    # (keyed by her own number, so handled beside the other sender's, not after them).
    async def meenas_messages() -> list[str]:
        _, customers = await api.call(
            "GET", "/api/v1/customers?q=Meena", token=wa.agent.access_token, expect=200
        )
        if not customers["data"]["items"]:
            return []
        (meena,) = customers["data"]["items"]
        assert (meena["phone"], meena["agent_id"]) == ("+919811111111", wa.agent.user_id)
        _, conversations = await api.call(
            "GET", "/api/v1/conversations", token=wa.agent.access_token, expect=200
        )
        hers = [c for c in conversations["data"]["items"] if c["customer_id"] == meena["id"]]
        assert len(hers) <= 1
        return [m["body"] for m in await history(api, wa, hers[0]["id"])] if hers else []

    async def arrived() -> bool:
        return await meenas_messages() == ["someone new"]

    await eventually(arrived, within=10)
    await agent_socket.close()


async def test_a_sender_that_is_no_phone_number_is_dropped_at_once_and_others_go_on(
    api: Api,
) -> None:
    wa = await whatsapp_tenant(api)
    customer_id, conversation_id = await customer_conversation(api, wa)

    def partition(wa_id: str) -> int:
        return partition_for(wa_id.encode(), WHATSAPP_INBOUND.partitions)

    # A wa_id that is no phone number (as in Meta's own sample payloads), on the customer's
    # partition and before their message: a retried failure would hold theirs back for ~20 s.
    bad = next(n for n in map(str, range(5678, 5800)) if partition(n) == partition(CUSTOMER_WA_ID))
    body = webhook_body(
        [
            text("wamid.NOPHONE", bad, "hello", T0),
            text("wamid.AFTER", CUSTOMER_WA_ID, "still here", T0 + 1),
        ]
    )
    assert (await post_webhook(api, wa.webhook, raw(body)))[0] == 200
    agent_socket = await ChatClient.connect(api.client, wa.agent.access_token)
    await agent_socket.join(conversation_id)
    arrived = await agent_socket.expect("message", within=8)
    assert arrived["external_id"] == "wamid.AFTER"
    metrics = await (await api.client.get("/metrics")).text()
    assert 'mitra_whatsapp_inbound_total{outcome="bad_number"} 1' in metrics
    dead = [line for line in metrics.splitlines() if line.startswith("mitra_streams_dead_letters")]
    assert not any("whatsapp-inbound" in line for line in dead)
    _, customers = await api.call(
        "GET", "/api/v1/customers", token=wa.agent.access_token, expect=200
    )
    assert [c["id"] for c in customers["data"]["items"]] == [customer_id]
    await agent_socket.close()


async def test_items_for_another_business_number_are_dropped(api: Api) -> None:
    wa = await whatsapp_tenant(api)
    _, conversation_id = await customer_conversation(api, wa)
    foreign = webhook_body(
        [text("wamid.X1", CUSTOMER_WA_ID, "not for you")], phone_number_id="999999999999"
    )
    assert (await post_webhook(api, wa.webhook, raw(foreign)))[0] == 200
    ours = webhook_body([text("wamid.X2", CUSTOMER_WA_ID, "for you")])
    assert (await post_webhook(api, wa.webhook, raw(ours)))[0] == 200
    agent_socket = await ChatClient.connect(api.client, wa.agent.access_token)
    await agent_socket.join(conversation_id)
    arrived = await agent_socket.expect("message", within=10)
    assert arrived["body"] == "for you"
    assert [m["body"] for m in await history(api, wa, conversation_id)] == ["for you"]
    metrics = await (await api.client.get("/metrics")).text()
    assert (
        'mitra_whatsapp_webhook_items_total{kind="message",outcome="foreign_number"} 1' in metrics
    )
    await agent_socket.close()


async def test_a_malformed_item_does_not_hold_back_the_valid_ones_in_its_body(api: Api) -> None:
    wa = await whatsapp_tenant(api)
    _, conversation_id = await customer_conversation(api, wa)
    no_id = {key: value for key, value in text("-", CUSTOMER_WA_ID, "lost").items() if key != "id"}
    body = webhook_body(
        [no_id, text("wamid.GOOD", CUSTOMER_WA_ID, "this one is fine")],
        statuses=[{"status": "read", "timestamp": "1760000100", "recipient_id": CUSTOMER_WA_ID}],
    )
    # 200: a refusal would make Meta redeliver the whole body, the good message with it, forever.
    assert await post_webhook(api, wa.webhook, raw(body)) == (200, "ok")
    agent_socket = await ChatClient.connect(api.client, wa.agent.access_token)
    await agent_socket.join(conversation_id)
    arrived = await agent_socket.expect("message", within=10)
    assert arrived["external_id"] == "wamid.GOOD"
    assert [m["body"] for m in await history(api, wa, conversation_id)] == ["this one is fine"]
    metrics = await (await api.client.get("/metrics")).text()
    for kind in ("message", "status"):
        line = f'mitra_whatsapp_webhook_items_total{{kind="{kind}",outcome="malformed"}} 1'
        assert line in metrics
    await agent_socket.close()


async def test_a_signed_body_that_is_not_a_webhook_is_a_400_naming_why(api: Api) -> None:
    wa = await whatsapp_tenant(api)
    status, answer = await post_webhook(api, wa.webhook, b'{"entry": "nope"}')
    assert status == 400
    assert "entry" in json.loads(answer)["errors"][0]["message"]


async def test_after_a_key_change_the_secrets_are_set_again_not_a_500(
    api: Api, make_settings: SettingsFactory, aiohttp_client: Any
) -> None:
    wa = await whatsapp_tenant(api)
    other_key = base64.b64encode(b"another key of thirty-two bytes!").decode()
    client = await aiohttp_client(
        create_app(make_settings(integrations={"secrets_key": other_key}))
    )
    headers = {"Authorization": f"Bearer {wa.admin.access_token}"}
    response = await client.get("/api/v1/integrations/whatsapp", headers=headers)
    assert response.status == 409
    assert "set them again" in (await response.json())["message"]
    signed = raw(webhook_body([text("wamid.K1", CUSTOMER_WA_ID, "hello")]))
    response = await client.post(
        wa.webhook, data=signed, headers={"X-Hub-Signature-256": sign(signed, APP_SECRET)}
    )
    assert response.status == 401  # nothing to check the signature with: refused, not a 500
    setup = {
        "phone_number_id": "106540352242922",
        "business_number": "+919820000001",
        "default_agent_id": wa.agent.user_id,
        "access_token": ACCESS_TOKEN,
        "app_secret": APP_SECRET,
        "verify_token": VERIFY_TOKEN,
    }
    response = await client.put("/api/v1/integrations/whatsapp", json=setup, headers=headers)
    assert response.status == 200
    response = await client.get("/api/v1/integrations/whatsapp", headers=headers)
    assert response.status == 200
