"""The socket contract: the AsyncAPI document is whole, and what a real session receives is what
it says, frame by frame."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from handlers.asyncapi import CLOSE_CODES, ERROR_CODES
from handlers.schemas.chat import FRAME_TYPES
from handlers.schemas.chat_server import SERVER_FRAMES
from mitra.chat.writer import MessageRefused, WriteRejected
from mitra.errors import ActorTimeout, ActorUnavailable, InvalidInput, Unavailable
from mitra.settings import Settings
from mitra.whatsapp.window import OutsideWindow
from streams.errors import StreamsUnavailable
from tests.conftest import SettingsFactory
from tests.support.api import Api
from tests.support.chat import staff_room
from tests.support.fake_graph import FakeGraph
from tests.support.imports import csv_bytes, upload
from tests.support.whatsapp import (
    customer_conversation,
    post_webhook,
    raw,
    text,
    webhook_body,
    whatsapp_tenant,
)
from tests.support.ws import ChatClient

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def settings(
    make_settings: SettingsFactory, graph: tuple[FakeGraph, str], tmp_path: Path
) -> Settings:
    # The assistant is on: its mode and escalation frames are in the contract too.
    return make_settings(
        whatsapp={"graph_base_url": graph[1]},
        chatbot={"enabled": True},
        imports={"directory": str(tmp_path / "imports")},
    )


def resolve(document: dict[str, Any], ref: str) -> Any:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in refs(value)]
    return []


async def test_the_document_names_every_frame_and_every_reference_resolves(api: Api) -> None:
    response = await api.client.get("/api/v1/asyncapi.json")
    assert response.status == 200
    document = await response.json()
    assert document["asyncapi"] == "3.0.0"
    messages = document["components"]["messages"]
    assert {m["name"] for k, m in messages.items() if k.startswith("client.")} == FRAME_TYPES
    assert {m["name"] for k, m in messages.items() if k.startswith("server.")} == set(SERVER_FRAMES)
    for ref in refs(document):
        assert resolve(document, ref) is not None, ref
    send = document["components"]["schemas"]["SendFrame"]
    assert send["properties"]["client_msg_id"]["maxLength"] == 64
    assert set(document["x-close-codes"]) == {"1001", "1007", "1009", "1011", "4008", "4401"}


def test_every_error_code_the_socket_can_send_is_documented() -> None:
    source = (ROOT / "handlers" / "chat_ws.py").read_text()
    literal = set(re.findall(r'_error\(\s*"([a-z_]+)"', source))
    assert literal  # the scan still finds the handler's codes
    raised = {
        error.code
        for error in (
            MessageRefused, WriteRejected, OutsideWindow, ActorTimeout, ActorUnavailable,
            Unavailable, StreamsUnavailable, InvalidInput,
        )
    }  # fmt: skip
    assert literal | raised | {"internal_error"} <= set(ERROR_CODES)


def test_the_readme_explains_every_error_code() -> None:
    readme = (ROOT / "README.md").read_text()
    # A row of the socket's error table: the code, then what it means.
    explained = set(re.findall(r"^\| `([a-z_]+)` \| \w", readme, re.M))
    assert set(ERROR_CODES) - explained == set()


def test_the_readme_explains_every_close_code() -> None:
    readme = (ROOT / "README.md").read_text()
    for code in CLOSE_CODES:
        assert re.search(rf"\*\*{code}\*\*|`{code}`", readme), code


async def test_every_frame_a_session_receives_is_what_the_document_says(api: Api) -> None:
    room = await staff_room(api)
    cid = str(room.conversation_id)
    alice = await ChatClient.connect(api.client, room.members[0].access_token)
    bob = await ChatClient.connect(api.client, room.members[1].access_token)
    await alice.join(cid)
    await bob.join(cid)
    await alice.say(cid, "c1", "hello")
    await bob.expect("message")
    await alice.send({"type": "typing", "conversation_id": cid})
    await bob.expect("typing")
    await bob.send({"type": "read", "conversation_id": cid, "seq": 1})
    await alice.expect("read")
    await alice.send({"type": "ping", "ref": "p"})
    await alice.expect("pong")
    await alice.send({"type": "nonsense"})
    await alice.expect("error")
    await bob.close()
    await alice.expect("presence", lambda f: f["status"] == "offline")
    # A WhatsApp customer's message and the status of the agent's reply.
    wa = await whatsapp_tenant(api)
    _, conversation_id = await customer_conversation(api, wa)
    agent = await ChatClient.connect(api.client, wa.agent.access_token)
    await agent.join(conversation_id)
    inbound = raw(webhook_body([text("wamid.C1", "919876543210", "hi")]))
    assert (await post_webhook(api, wa.webhook, inbound))[0] == 200
    await agent.expect("message", within=15)
    # The assistant hands the customer over: an escalation and a mode change.
    handoff = raw(webhook_body([text("wamid.C2", "919876543210", "talk to my agent")]))
    assert (await post_webhook(api, wa.webhook, handoff))[0] == 200
    await agent.expect("escalation", within=15)
    await agent.expect("mode", within=15)
    await agent.say(conversation_id, "r1", "hello Ravi")
    await agent.expect("status", within=15)
    # An import's progress, pushed to the uploading agent.
    book = csv_bytes([["Customer Name", "Mobile"], ["Ravi", "98765 43299"]])
    await upload(api, wa.agent, "book.csv", book)
    await agent.expect("import_progress", lambda f: f["finished"], within=15)

    seen = set()
    for frame in [*alice.frames, *bob.frames, *agent.frames]:
        model = SERVER_FRAMES[frame["type"]]
        model.model_validate(frame)
        seen.add(frame["type"])
        if frame["type"] == "error":
            assert frame["code"] in ERROR_CODES
    assert seen == set(SERVER_FRAMES)
    await alice.close()
    await agent.close()
