"""Conversation actors in the running app: numbering, persistence, retries, crashes, passivation."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from typing import Any

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from actors.chat import ChatActors
from actors.conversation import ConversationActor, SendMessage
from handlers.keys import ACTORS, CHAT, CONVERSATIONS, DATABASE, MESSAGE_WRITER, SETTINGS
from mitra.chat import WriteRejected
from mitra.db import Scope, utcnow
from mitra.errors import ActorUnavailable, NotFound
from mitra.models import Conversation, ConversationMember, Message
from tests.conftest import SettingsFactory
from tests.streams.conftest import eventually
from tests.support.api import Api
from tests.support.chat import Room, staff_room


async def stored_seqs(api: Api, conversation_id: uuid.UUID) -> list[tuple[int, str]]:
    async with api.app[DATABASE].session(Scope.system()) as session:
        rows = await session.execute(
            select(Message.seq, Message.client_msg_id)
            .where(Message.conversation_id == conversation_id)
            .order_by(Message.seq)
        )
        return [(seq, client) for seq, client in rows]


async def send(api: Api, room: Room, client_msg_id: str, member: int = 0) -> Any:
    return await api.app[CHAT].send(
        room.tenant_id,
        room.conversation_id,
        SendMessage(room.principals[member].user_id, client_msg_id, f"body of {client_msg_id}"),
    )


async def test_messages_are_numbered_persisted_and_acked_after_commit(api: Api) -> None:
    room = await staff_room(api)
    acks = [await send(api, room, f"m{n}", member=n % 2) for n in range(1, 4)]
    assert [ack.seq for ack in acks] == [1, 2, 3]
    assert await stored_seqs(api, room.conversation_id) == [(1, "m1"), (2, "m2"), (3, "m3")]
    assert acks[1].sender_id == room.principals[0].user_id


async def test_a_retry_with_the_same_client_id_returns_the_first_ack(api: Api) -> None:
    room = await staff_room(api)
    first = await send(api, room, "again")
    second = await send(api, room, "again")
    # The whole first acceptance (sender, body, time...), not just its numbers.
    assert second == first
    assert await stored_seqs(api, room.conversation_id) == [(1, "again")]


async def test_concurrent_senders_get_one_gap_free_order(api: Api) -> None:
    room = await staff_room(api, size=3)
    acks = await asyncio.gather(*(send(api, room, f"c{n}", member=n % 3) for n in range(60)))
    assert sorted(ack.seq for ack in acks) == list(range(1, 61))
    stored = await stored_seqs(api, room.conversation_id)
    assert [seq for seq, _ in stored] == list(range(1, 61))
    assert {client for _, client in stored} == {f"c{n}" for n in range(60)}
    by_client = {ack.client_msg_id: ack.seq for ack in acks}
    assert all(by_client[client] == seq for seq, client in stored)


async def test_a_non_member_or_unknown_conversation_is_not_found(api: Api) -> None:
    room = await staff_room(api)
    outsider = await staff_room(api)
    with pytest.raises(NotFound):
        await api.app[CHAT].send(
            room.tenant_id,
            room.conversation_id,
            SendMessage(outsider.principals[0].user_id, "x", "hello"),
        )
    with pytest.raises(NotFound):
        await api.app[CHAT].send(
            room.tenant_id, uuid.uuid4(), SendMessage(room.principals[0].user_id, "x", "hi")
        )
    # Another tenant's conversation id under my tenant is not there either.
    with pytest.raises(NotFound):
        await api.app[CHAT].send(
            room.tenant_id,
            outsider.conversation_id,
            SendMessage(room.principals[0].user_id, "x", "hi"),
        )


class Explode:
    """A message that makes the test actor fail, as a bug in a handler would."""


class FragileConversationActor(ConversationActor):
    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Explode):
            raise RuntimeError("simulated crash")
        return super().on_receive(message)


async def test_a_crash_with_queued_messages_loses_and_renumbers_nothing(api: Api) -> None:
    room = await staff_room(api)
    app = api.app
    chat = ChatActors(
        app[ACTORS],
        app[CONVERSATIONS],
        app[MESSAGE_WRITER],
        app[SETTINGS].actors,
        actor_class=FragileConversationActor,
    )
    key = (room.tenant_id, room.conversation_id)
    sender = room.principals[0].user_id

    async def send_until_stored(client: str) -> Any:
        for _ in range(10):
            try:
                return await chat.send(*key, SendMessage(sender, client, client))
            except ActorUnavailable:
                await asyncio.sleep(0.01)  # what a client does: send the same id again
        raise AssertionError(f"{client} was never stored")

    acked = [await send_until_stored(f"a{n}") for n in range(5)]
    assert [ack.seq for ack in acked] == [1, 2, 3, 4, 5]
    # The crash is queued ahead of five more sends, which therefore reach a dead actor.
    chat.conversations.tell(key, Explode())
    queued = [
        asyncio.ensure_future(chat.send(*key, SendMessage(sender, f"b{n}", "b"))) for n in range(5)
    ]
    outcomes = await asyncio.gather(*queued, return_exceptions=True)
    assert all(isinstance(o, ActorUnavailable) or hasattr(o, "seq") for o in outcomes), outcomes
    retried = [await send_until_stored(f"b{n}") for n in range(5)]

    stored = await stored_seqs(api, room.conversation_id)
    assert [seq for seq, _ in stored] == list(range(1, 11))
    for ack in acked:
        assert (ack.seq, ack.client_msg_id) in stored
    assert sorted(ack.seq for ack in retried) == list(range(6, 11))
    assert len({client for _, client in stored}) == 10


async def test_a_rejected_write_resets_the_actor_without_a_gap(api: Api) -> None:
    room = await staff_room(api)
    first = await send(api, room, "one")
    # Another writer (an instance that wrongly believed it owned the conversation) took seq 2.
    async with api.app[DATABASE].transaction(Scope.system()) as session:
        now = utcnow()
        await session.execute(
            insert(Message).values(
                id=uuid.uuid4(),
                tenant_id=room.tenant_id,
                conversation_id=room.conversation_id,
                seq=2,
                sender_id=room.principals[1].user_id,
                client_msg_id="intruder",
                body="taken",
                channel="app",
                sent_at=now,
                created_at=now,
                updated_at=now,
            )
        )
    with pytest.raises(WriteRejected):
        await send(api, room, "two")
    retried = None
    for _ in range(50):
        try:
            retried = await send(api, room, "two")
            break
        except WriteRejected:
            await asyncio.sleep(0.02)
    assert retried is not None
    assert (first.seq, retried.seq) == (1, 3)
    assert [seq for seq, _ in await stored_seqs(api, room.conversation_id)] == [1, 2, 3]


async def test_two_concurrent_first_messages_start_one_actor(api: Api) -> None:
    room = await staff_room(api)
    chat = api.app[CHAT]
    assert len(chat.conversations) == 0
    await asyncio.gather(*(send(api, room, f"f{n}") for n in range(20)))
    assert chat.conversations.live_keys() == [(room.tenant_id, room.conversation_id)]
    live = await chat.live_conversations(room.tenant_id)
    assert live == {room.conversation_id}


async def _many_conversations(api: Api, room: Room, count: int) -> list[uuid.UUID]:
    """`count` conversations among the room's members, inserted in bulk."""
    ids = [uuid.uuid4() for _ in range(count)]
    now = utcnow()
    common = {"tenant_id": room.tenant_id, "created_at": now, "updated_at": now}
    async with api.app[DATABASE].transaction(Scope.system()) as session:
        await session.execute(insert(Conversation), [{"id": cid, **common} for cid in ids])
        await session.execute(
            insert(ConversationMember),
            [
                {"id": uuid.uuid4(), "conversation_id": cid, "user_id": p.user_id, **common}
                for cid in ids
                for p in room.principals
            ],
        )
    return ids


async def _fill_connection_pool(api: Api) -> None:
    """aiosqlite runs a thread per pooled connection, and SQLite's sync reads have threads of
    their own; start the steady set of both up front so the baseline counts them and only actor
    threads come and go."""
    database = api.app[DATABASE]

    async def query() -> None:
        async with database.session(Scope.system()) as session:
            await session.scalar(select(func.count()).select_from(Message))
            await asyncio.sleep(0.05)

    def sync_query(session: Session) -> None:
        session.scalar(select(func.count()).select_from(Message))
        time.sleep(0.05)  # on a read thread: keeps each busy so the pool starts all of them

    await asyncio.gather(
        *(query() for _ in range(20)),
        *(database.read_sync(Scope.system(), sync_query) for _ in range(8)),
    )


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_idle_conversations_passivate_and_threads_return_to_baseline(
    aiohttp_client: Any, make_settings: SettingsFactory, notifier: Any
) -> None:
    from handlers.app import create_app

    settings = make_settings(actors={"idle_timeout_seconds": 3.0})
    app = create_app(settings, notifier=notifier)
    client = await aiohttp_client(app)
    api = Api(client, app, notifier)
    room = await staff_room(api)
    ids = await _many_conversations(api, room, 2000)
    await _fill_connection_pool(api)
    baseline = threading.active_count()
    sender = room.principals[0].user_id
    touched = peak_live = 0
    for start in range(0, len(ids), 100):
        answers = await asyncio.gather(
            *(app[CHAT].is_member(room.tenant_id, cid, sender) for cid in ids[start : start + 100])
        )
        touched += sum(answers)
        # One thread per live conversation. How many are live at once depends on how fast this
        # machine activates them against the idle timeout, so the count is read, not assumed.
        live = len(app[CHAT].conversations)
        assert threading.active_count() >= baseline + live
        peak_live = max(peak_live, live)
    assert touched == 2000
    assert peak_live >= 200
    await eventually(
        lambda: not len(app[CHAT].conversations) and threading.active_count() <= baseline,
        within=30,
    )
    # The next message re-activates its conversation transparently.
    ack = await app[CHAT].send(room.tenant_id, ids[0], SendMessage(sender, "late", "still here"))
    assert ack.seq == 1
    async with app[DATABASE].session(Scope.system()) as session:
        assert await session.scalar(select(func.count()).select_from(Message)) == 1


async def test_the_live_cap_passivates_the_least_recently_used(
    aiohttp_client: Any, make_settings: SettingsFactory, notifier: Any
) -> None:
    from handlers.app import create_app

    settings = make_settings(actors={"max_live_conversations": 20})
    app = create_app(settings, notifier=notifier)
    client = await aiohttp_client(app)
    api = Api(client, app, notifier)
    room = await staff_room(api)
    ids = await _many_conversations(api, room, 50)
    sender = room.principals[0].user_id
    for cid in ids:
        await app[CHAT].is_member(room.tenant_id, cid, sender)
    live = app[CHAT].conversations.live_keys()
    assert len(live) == 20
    assert [cid for _, cid in live] == ids[-20:]


async def test_shutdown_leaves_no_actor_threads(
    aiohttp_client: Any, make_settings: SettingsFactory, notifier: Any
) -> None:
    from handlers.app import create_app

    baseline = threading.active_count()
    app = create_app(make_settings(), notifier=notifier)
    client = await aiohttp_client(app)
    api = Api(client, app, notifier)
    room = await staff_room(api, size=3)
    await asyncio.gather(*(send(api, room, f"s{n}", member=n % 3) for n in range(30)))
    assert threading.active_count() > baseline
    await client.close()
    actor_threads = [
        t
        for t in threading.enumerate()
        if t.name.startswith(("conversation", "tenant", "Supervisor", "actor-"))
    ]
    assert actor_threads == []
