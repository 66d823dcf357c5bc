"""How committed messages reach sockets: on commit, through chat.events, and both at once."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from sqlalchemy import insert

from actors.conversation import SendMessage
from handlers.app import create_app
from handlers.keys import CHAT, DATABASE, OUTBOX, STREAMS
from mitra.chat import MessageRefused, StoredMessage, WriteRejected
from mitra.db import Scope, utcnow
from mitra.models import Message
from streams.envelope import Event
from streams.topics import CHAT_EVENTS
from tests.conftest import SettingsFactory
from tests.support.api import Api
from tests.support.chat import Room, staff_room
from tests.support.notifier import RecordingNotifier
from tests.support.ws import ChatClient


@pytest.fixture
async def api(
    aiohttp_client: Any, make_settings: SettingsFactory, notifier: RecordingNotifier
) -> Api:
    """The app with a send rate that load from a few sockets does not hit."""
    app = create_app(make_settings(chat={"rate_limit_messages": 10_000}), notifier=notifier)
    return Api(await aiohttp_client(app), app, notifier)


async def connect(api: Api, room: Room, member: int) -> ChatClient:
    return await ChatClient.connect(api.client, room.members[member].access_token)


def message_seqs(socket: ChatClient, conversation_id: str) -> list[int]:
    return [
        f["seq"]
        for f in socket.frames
        if f["type"] == "message" and f["conversation_id"] == conversation_id
    ]


async def test_a_committed_message_reaches_this_instances_sockets_without_the_outbox(
    api: Api,
) -> None:
    room = await staff_room(api)
    cid = str(room.conversation_id)
    alice, bob = await connect(api, room, 0), await connect(api, room, 1)
    await alice.join(cid)
    await bob.join(cid)
    # With the relay stopped nothing leaves the outbox: delivery must not depend on it.
    await api.app[OUTBOX].stop()
    ack = await alice.say(cid, "direct", "straight from the commit")
    (message,) = await bob.messages(1)
    assert (message["seq"], message["body"]) == (ack["seq"], "straight from the commit")
    assert message["message_id"] == ack["message_id"]


async def test_both_paths_together_give_each_socket_every_seq_once_in_order(api: Api) -> None:
    """Every message reaches this instance's sockets on commit and again through
    chat.events (the relay runs): under concurrent load each socket still sees 1..N once."""
    room = await staff_room(api, size=4)
    cid = str(room.conversation_id)
    sockets = [await connect(api, room, n) for n in range(4)]
    for socket in sockets:
        await socket.join(cid)
    total = 120
    acks = await asyncio.gather(
        *(sockets[n % 4].say(cid, f"load{n}", f"body {n}") for n in range(total))
    )
    assert sorted(ack["seq"] for ack in acks) == list(range(1, total + 1))
    for socket in sockets:
        await socket.messages(total, within=10)
    # Give the outbox copies time to arrive too; none of them may show.
    await asyncio.sleep(1.0)
    for socket in sockets:
        assert message_seqs(socket, cid) == list(range(1, total + 1))


async def store_elsewhere(api: Api, room: Room, seq: int, client_msg_id: str) -> StoredMessage:
    """A message another instance committed (as after the conversation moved here)."""
    message = StoredMessage(
        conversation_id=room.conversation_id,
        seq=seq,
        message_id=uuid.uuid4(),
        sender_id=room.principals[1].user_id,
        client_msg_id=client_msg_id,
        body=f"written elsewhere as {seq}",
        channel="app",
        sent_at=utcnow(),
    )
    async with api.app[DATABASE].transaction(Scope.system()) as session:
        now = utcnow()
        await session.execute(
            insert(Message).values(
                id=message.message_id,
                tenant_id=room.tenant_id,
                conversation_id=message.conversation_id,
                seq=seq,
                sender_id=message.sender_id,
                client_msg_id=client_msg_id,
                body=message.body,
                channel="app",
                sent_at=message.sent_at,
                created_at=now,
                updated_at=now,
            )
        )
    return message


async def test_a_seq_that_skips_ahead_is_filled_from_the_database_first(api: Api) -> None:
    room = await staff_room(api)
    cid = str(room.conversation_id)
    alice = await connect(api, room, 0)
    await alice.join(cid)
    await alice.say(cid, "first")
    await alice.messages(1)
    # Seqs 2 and 3 were committed elsewhere; only 3's event reaches us so far.
    await store_elsewhere(api, room, 2, "second")
    third = await store_elsewhere(api, room, 3, "third")
    event = Event(
        type="message.accepted",
        tenant_id=str(room.tenant_id),
        key=cid,
        payload=third.as_payload(),
    )
    await api.app[STREAMS].publish(CHAT_EVENTS.name, cid, event)
    received = await alice.messages(2)
    assert [(m["seq"], m["client_msg_id"]) for m in received] == [(2, "second"), (3, "third")]
    # The late event for 2 changes nothing.
    second = StoredMessage.from_payload({**third.as_payload(), "seq": 2})
    late = Event(
        type="message.accepted", tenant_id=str(room.tenant_id), key=cid, payload=second.as_payload()
    )
    await api.app[STREAMS].publish(CHAT_EVENTS.name, cid, late)
    # The conversation moved back here: its actor starts again from what is stored.
    api.app[CHAT].passivate(room.tenant_id, room.conversation_id)
    await alice.say(cid, "fourth")
    await alice.messages(1)
    assert message_seqs(alice, cid) == [1, 2, 3, 4]


async def test_a_since_seq_past_the_end_is_clamped_and_live_messages_still_arrive(
    api: Api,
) -> None:
    room = await staff_room(api)
    cid = str(room.conversation_id)
    alice, bob = await connect(api, room, 0), await connect(api, room, 1)
    await alice.join(cid)
    await alice.say(cid, "one")
    joined = await bob.join(cid, since_seq=1_000)
    assert (joined["last_seq"], joined["since_seq"]) == (1, 1)
    await alice.say(cid, "two")
    (live,) = await bob.messages(1)
    assert live["seq"] == 2


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_a_message_the_database_refuses_fails_alone(api: Api) -> None:
    """PostgreSQL refuses a NUL character in text. Sent in the same group commit as other
    conversations' messages, only that message is refused, and without an invitation to retry;
    its conversation goes on from the same seq."""
    rooms = [await staff_room(api) for _ in range(3)]
    sender = [room.principals[0].user_id for room in rooms]

    async def send(index: int, client_msg_id: str, body: str) -> Any:
        room = rooms[index]
        message = SendMessage(sender[index], client_msg_id, body)
        return await api.app[CHAT].send(room.tenant_id, room.conversation_id, message)

    plan = [(n % 3, f"ok{n}", f"fine {n}") for n in range(30)]
    plan.insert(13, (0, "bad", "nul \x00 inside"))
    results = await asyncio.gather(*(send(*item) for item in plan), return_exceptions=True)
    outcome = list(zip(plan, results, strict=True))
    refused = [r for _, r in outcome if isinstance(r, MessageRefused)]
    assert len(refused) == 1
    assert (refused[0].status, refused[0].code) == (422, "message_refused")
    assert next(r for (_, c, _), r in outcome if c == "bad") is refused[0]
    # Messages of the same conversation queued behind it are told to send again; nothing else.
    for (index, _, _), result in outcome:
        if isinstance(result, BaseException) and result is not refused[0]:
            assert index == 0, result
            assert isinstance(result, WriteRejected), result
    for index in (1, 2):
        seqs = sorted(r.seq for (i, _, _), r in outcome if i == index)  # type: ignore[union-attr]
        assert seqs == list(range(1, 11))
    # The refused message left no hole: the conversation goes on gap-free.
    stored_first = sorted(
        r.seq for (i, _, _), r in outcome if i == 0 and isinstance(r, StoredMessage)
    )
    assert stored_first == list(range(1, len(stored_first) + 1))
    after = None
    for attempt in range(50):
        try:
            after = await send(0, "after", "next one")
            break
        except WriteRejected:  # the actor is still reloading from what is stored
            await asyncio.sleep(0.02 * attempt)
    assert after is not None
    assert after.seq == len(stored_first) + 1


async def test_frames_of_every_length_class_arrive_intact(
    aiohttp_client: Any, make_settings: SettingsFactory, notifier: RecordingNotifier
) -> None:
    """Frames are built once and written as bytes: the 7-bit and 16-bit length forms of
    RFC 6455 must parse at a real client (clients cannot send a frame big enough for the
    64-bit form, which tests/unit/test_chat_frames.py checks)."""
    settings = make_settings(chat={"max_body_chars": 100_000})
    app = create_app(settings, notifier=notifier)
    api = Api(await aiohttp_client(app), app, notifier)
    room = await staff_room(api)
    cid = str(room.conversation_id)
    alice, bob = await connect(api, room, 0), await connect(api, room, 1)
    await alice.join(cid)
    await bob.join(cid)
    bodies = ["short", "ü" * 300, "long body " * 6_000 + "end"]
    for n, body in enumerate(bodies):
        await alice.say(cid, f"size{n}", body)
    received = await bob.messages(3)
    assert [m["body"] for m in received] == bodies
