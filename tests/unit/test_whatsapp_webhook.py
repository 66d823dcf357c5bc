"""Meta's webhook bodies: the signature over raw bytes, the split into items, the rendering."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
import pytest

from mitra.whatsapp.render import client_msg_id, render
from mitra.whatsapp.webhook import WebhookUnreadable, parse_webhook, sign, signature_valid

# The published samples live beside the checkout, not in it (they are not ours to ship).
FIXTURES = (
    Path(os.environ.get("MITRA_PROVIDER_FIXTURES", "/work/shared/fixtures/providers")) / "whatsapp"
)
SECRET = "app-secret"


def test_the_signature_is_over_the_exact_bytes() -> None:
    # Meta sends non-ASCII as UTF-8 and escapes some characters (here "\/" and "\u00e9").
    body = '{"text":"नमस्ते 🙏","url":"https:\\/\\/x.example","name":"Ren\\u00e9"}'.encode()
    header = sign(body, SECRET)
    assert signature_valid(body, header, SECRET)
    assert signature_valid(body, header.upper().replace("SHA256=", "sha256="), SECRET)
    same_document = orjson.dumps(orjson.loads(body))
    assert same_document != body
    assert not signature_valid(same_document, header, SECRET)
    assert not signature_valid(body, header, "another-secret")
    assert not signature_valid(body, None, SECRET)
    assert not signature_valid(body, header.removeprefix("sha256="), SECRET)


def message_body(*messages: dict[str, Any], statuses: tuple[dict[str, Any], ...] = ()) -> bytes:
    value: dict[str, Any] = {
        "metadata": {"phone_number_id": "123456"},
        "contacts": [{"profile": {"name": "Asha"}, "wa_id": "919800000001"}],
        "messages": list(messages),
        "statuses": list(statuses),
    }
    return orjson.dumps({"entry": [{"changes": [{"field": "messages", "value": value}]}]})


def test_a_body_splits_into_items_messages_first_in_timestamp_order() -> None:
    late = {"from": "919800000001", "id": "w2", "timestamp": "20", "type": "text"}
    early = {"from": "919800000001", "id": "w1", "timestamp": "10", "type": "text"}
    status = {"id": "w0", "status": "read", "timestamp": "5", "recipient_id": "919800000001"}
    body = parse_webhook(message_body(late, early, statuses=(status,)))
    assert [(i.kind, i.data["id"]) for i in body.items] == [
        ("message", "w1"),
        ("message", "w2"),
        ("status", "w0"),
    ]
    assert body.items[0].profile_name == "Asha"
    assert body.items[0].phone_number_id == "123456"


def test_several_entries_and_changes_in_one_body_are_all_read() -> None:
    def change(number: str, wamid: str) -> dict[str, Any]:
        value = {
            "metadata": {"phone_number_id": number},
            "messages": [{"from": "919800000001", "id": wamid, "timestamp": "1", "type": "text"}],
        }
        return {"field": "messages", "value": value}

    document = {
        "entry": [
            {"id": "1", "changes": [change("111", "w1"), {"field": "account_update", "value": {}}]},
            {"id": "2", "changes": [change("222", "w2"), change("111", "w3")]},
        ]
    }
    body = parse_webhook(orjson.dumps(document))
    assert [(i.phone_number_id, i.data["id"]) for i in body.items] == [
        ("111", "w1"),
        ("222", "w2"),
        ("111", "w3"),
    ]


@pytest.mark.parametrize("data", [b"not json", b"[]", b'{"entry": {}}'])
def test_a_body_that_is_not_a_webhook_says_why(data: bytes) -> None:
    with pytest.raises(WebhookUnreadable):
        parse_webhook(data)


def test_items_without_their_ids_are_left_out_and_the_others_kept() -> None:
    good = {"from": "919800000001", "id": "w1", "timestamp": "10", "type": "text"}
    no_id = {"from": "919800000001", "timestamp": "11", "type": "text"}
    no_sender = {"from": None, "id": "w2", "timestamp": "12", "type": "text"}
    no_state = {"id": "w0", "timestamp": "5", "recipient_id": "919800000001"}
    body = parse_webhook(message_body(no_id, good, no_sender, statuses=(no_state,)))
    assert [i.data["id"] for i in body.items] == ["w1"]
    assert sorted(body.malformed) == ["message", "message", "status"]


@pytest.mark.parametrize(
    ("message", "body", "meta"),
    [
        (
            {"type": "interactive", "context": {"id": "wamid.Q"},
             "interactive": {"type": "list_reply", "list_reply": {
                 "id": "p2", "title": "Policy 2", "description": "LIC"}}},
            "Policy 2 — LIC",
            {"reply_to": "wamid.Q",
             "reply": {"type": "list_reply", "id": "p2", "title": "Policy 2"}},
        ),
        (
            {"type": "location", "location": {"latitude": 19.07, "longitude": 72.87,
                                              "name": "Office", "address": "Andheri"}},
            "📍 Office, Andheri",
            {"location": {"latitude": 19.07, "longitude": 72.87, "name": "Office",
                          "address": "Andheri", "url": None}},
        ),
        (
            {"type": "document", "document": {"id": "m1", "mime_type": "application/pdf",
                                              "filename": "rc.pdf"}},
            "rc.pdf",
            {"media": {"kind": "document", "id": "m1", "mime_type": "application/pdf",
                       "sha256": None, "caption": None, "filename": "rc.pdf"}},
        ),
        (
            {"type": "contacts", "contacts": [{"name": {"formatted_name": "Dev"},
                                               "phones": [{"phone": "+91 98000 00002"}]}]},
            "👤 Dev +91 98000 00002",
            {"contacts": [{"name": "Dev", "phones": ["+91 98000 00002"]}]},
        ),
        (
            {"type": "unsupported", "errors": [{"code": 131051, "title": "Unsupported"}]},
            "[unsupported message: not shown here]",
            {"errors": [{"code": 131051, "title": "Unsupported"}]},
        ),
        ({"type": "text", "text": {"body": "a\x00b"}}, "a\ufffdb", {}),
    ],
)  # fmt: skip
def test_each_message_type_renders_to_text_and_meta(
    message: dict[str, Any], body: str, meta: dict[str, Any]
) -> None:
    rendered, got = render(message)
    assert rendered == body
    assert got == {"wa_type": message["type"], **meta}


def test_a_wamid_of_any_length_fits_the_client_id_column() -> None:
    long_wamid = "wamid." + "A" * 120
    assert len(client_msg_id(long_wamid)) <= 64
    assert client_msg_id(long_wamid) == client_msg_id(long_wamid)
    assert client_msg_id(long_wamid) != client_msg_id(long_wamid + "B")


def test_every_published_sample_body_parses_and_renders() -> None:
    samples = sorted(FIXTURES.glob("*.json"))
    if not samples:
        pytest.skip(f"the shared provider samples are not at {FIXTURES}")
    webhooks = 0
    for sample in samples:
        data = sample.read_bytes()
        if b'"entry"' not in data:
            continue  # Graph API answers, not webhooks
        webhooks += 1
        body = parse_webhook(data)
        for item in body.items:
            if item.kind == "message":
                text, meta = render(item.data)
                assert text, sample.name
                assert meta["wa_type"] == item.data["type"]
            else:
                assert item.data["status"] in {"sent", "delivered", "read", "failed"}
    assert webhooks >= 25
