"""The outbox relay on SQLite and PostgreSQL, publishing to memory:// and to a real broker."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from mitra.db import Database, Scope, utcnow
from mitra.models import OutboxEvent, Tenant
from mitra.settings import DatabaseSettings
from streams.base import PublishItem, Streams
from streams.envelope import Event
from streams.errors import BatchPublishFailed, StreamsUnavailable
from streams.memory import MemoryStreams
from streams.outbox import OutboxRelay, RelayOptions
from streams.processed import DatabaseProcessedStore, consume_once
from streams.topics import TopicSpec
from tests.streams.conftest import Collector, eventually
from tests.support.databases import truncate_all

Names = Callable[[str], str]
FAST = RelayOptions(poll_interval=0.05, initial_backoff=0.01, max_backoff=0.05, stop_timeout=0.2)


async def topic(bus: Streams, unique: Names) -> str:
    name = unique("outbox")
    await bus.ensure_topics([TopicSpec(name, 3)])
    return name


async def emit(
    database: Database, tenant_id: uuid.UUID, topic: str, items: list[tuple[str, int]]
) -> list[uuid.UUID]:
    """One unit of work emitting an event per (key, seq)."""
    async with database.unit_of_work(Scope.tenant(tenant_id)) as uow:
        return [uow.emit(topic, key, "test.happened", {"seq": seq}) for key, seq in items]


async def unpublished(database: Database) -> int:
    async with database.session(Scope.system()) as session:
        rows = await session.execute(
            select(OutboxEvent.id).where(OutboxEvent.published_at.is_(None))
        )
        return len(rows.all())


def value(collector: Any, labels: dict[str, str] | None = None) -> float:
    """A counter's or gauge's value, 0 before its first update."""
    try:
        return float(collector.get(labels or {}))
    except KeyError:
        return 0.0


def per_key(events: list[Event]) -> dict[str, list[int]]:
    keys: dict[str, list[int]] = defaultdict(list)
    for e in events:
        keys[e.key].append(int(e.payload["seq"]))
    return dict(keys)


async def test_a_committed_event_reaches_a_subscriber_at_once(
    database: Database, tenant_id: uuid.UUID, bus: Streams, unique: Names
) -> None:
    name = await topic(bus, unique)
    got = Collector()
    await bus.subscribe([name], unique("g"), got)
    # A poll interval far longer than the wait: only the after-commit wake-up can deliver it.
    relay = OutboxRelay(database, bus, RelayOptions(poll_interval=60.0))
    await relay.start()
    try:
        await asyncio.sleep(0.1)  # the relay's first (empty) round is over; it now waits
        async with database.unit_of_work(Scope.tenant(tenant_id)) as uow:
            event_id = uow.emit(name, "conv-1", "chat.accepted", {"seq": 1, "body": "namaste"})
        [received] = await got.count(1, within=15)
        await eventually(lambda: value(relay.metrics.published, {"topic": name}) == 1)
        await eventually(lambda: _zero(unpublished(database)))
    finally:
        await relay.stop()
    assert received.id == event_id
    assert (received.type, received.key, received.tenant_id) == (
        "chat.accepted",
        "conv-1",
        str(tenant_id),
    )
    assert received.payload == {"seq": 1, "body": "namaste"}


async def _zero(count: Any) -> bool:
    return bool(await count == 0)


async def test_the_relay_keeps_the_order_of_each_key(
    database: Database, tenant_id: uuid.UUID, bus: Streams, unique: Names
) -> None:
    name = await topic(bus, unique)
    got = Collector()
    await bus.subscribe([name], unique("g"), got)
    # Small batches, so the order must hold across rounds as well as within one.
    relay = OutboxRelay(database, bus, RelayOptions(poll_interval=0.05, batch_size=7))
    for seq in range(0, 20, 4):
        await emit(database, tenant_id, name, [(k, s) for s in range(seq, seq + 4) for k in "abc"])
    await relay.start()
    try:
        await got.count(60)
    finally:
        await relay.stop()
    assert per_key(got.events) == {k: list(range(20)) for k in "abc"}
    assert len({e.id for e in got.events}) == 60


async def test_a_crash_before_marking_republishes_the_same_ids_and_consumers_apply_once(
    database: Database, tenant_id: uuid.UUID, bus: Streams, unique: Names
) -> None:
    name, group = await topic(bus, unique), unique("g")
    received: list[uuid.UUID] = []
    applied: list[uuid.UUID] = []

    async def consumer(event: Event) -> None:
        received.append(event.id)
        async with consume_once(database, group, event) as session:
            if session is not None:
                applied.append(event.id)

    await bus.subscribe([name], group, consumer)
    ids = await emit(database, tenant_id, name, [("k", n) for n in range(5)])

    crashed = OutboxRelay(database, bus, FAST)
    marking = asyncio.Event()

    async def hang(_ids: list[int]) -> None:
        marking.set()
        await asyncio.Event().wait()  # the process dies here: published, never marked

    crashed._mark = hang  # type: ignore[method-assign, assignment]
    await crashed.start()
    async with asyncio.timeout(10):
        await marking.wait()
    await crashed.stop()  # cancelled mid-mark
    assert await unpublished(database) == 5

    restarted = OutboxRelay(database, bus, FAST)
    await restarted.start()
    try:
        await eventually(lambda: len(received) >= 10)
        await eventually(lambda: _zero(unpublished(database)))
    finally:
        await restarted.stop()
    assert sorted(received) == sorted(ids * 2), "the same event ids, published twice"
    assert sorted(applied) == sorted(ids), "and applied once"
    store = DatabaseProcessedStore(database)
    assert all([await store.seen(group, i) for i in ids])


class FlakyStreams(MemoryStreams):
    """A memory backend whose broker is 'down' for the first `failures` publishes."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def publish_batch(self, items: Sequence[PublishItem]) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise StreamsUnavailable("broker down")
        await super().publish_batch(items)


class RefusesOnce(MemoryStreams):
    """A memory backend whose broker refuses one record once and accepts the rest of its batch,
    as Kafka can (an expired request, a record too large for a moment)."""

    def __init__(self, refuse: Callable[[Event], bool]) -> None:
        super().__init__()
        self.refuse = refuse
        self.refused: list[uuid.UUID] = []

    async def publish_batch(self, items: Sequence[PublishItem]) -> None:
        failed = frozenset(
            i for i, (_, _, value) in enumerate(items) if self._refuses(Event.decode(value))
        )
        await super().publish_batch([item for i, item in enumerate(items) if i not in failed])
        if failed:
            raise BatchPublishFailed("refused", failed=failed)

    def _refuses(self, event: Event) -> bool:
        if event.id in self.refused or not self.refuse(event):
            return False
        self.refused.append(event.id)
        return True


async def test_while_the_broker_is_down_rows_wait_and_then_go_out_in_order(
    database: Database, tenant_id: uuid.UUID
) -> None:
    bus = FlakyStreams(failures=4)
    await bus.start()
    got = Collector()
    await bus.subscribe(["outbox.flaky"], "g", got)
    relay = OutboxRelay(database, bus, FAST)
    await emit(database, tenant_id, "outbox.flaky", [(k, n) for n in range(5) for k in "xy"])
    await relay.start()
    try:
        await got.count(10)
        await eventually(lambda: _zero(unpublished(database)))
    finally:
        await relay.stop()
        await bus.stop()
    assert per_key(got.events) == {"x": list(range(5)), "y": list(range(5))}
    assert len(got.events) == 10, "nothing lost, nothing doubled"
    assert value(relay.metrics.failures) >= 2


async def test_rows_of_a_key_after_a_refused_one_go_out_again_after_it(
    database: Database, tenant_id: uuid.UUID
) -> None:
    bus = RefusesOnce(lambda e: e.key == "x" and e.payload["seq"] == 1)
    await bus.start()
    got = Collector()
    await bus.subscribe(["outbox.refused"], "g", got)
    relay = OutboxRelay(database, bus, FAST)
    await emit(database, tenant_id, "outbox.refused", [(k, n) for n in range(4) for k in "xy"])
    await relay.start()
    try:
        await got.count(4 + 4 + 2)
        await eventually(lambda: _zero(unpublished(database)))
    finally:
        await relay.stop()
        await bus.stop()
    # x2 and x3 were accepted in the first round, behind the refused x1; they are published
    # again after x1, so the key ends in order and nothing is lost. Other keys are untouched.
    assert per_key(got.events) == {"x": [0, 2, 3, 1, 2, 3], "y": [0, 1, 2, 3]}
    assert value(relay.metrics.failures) == 1


async def test_a_row_that_is_not_an_event_is_skipped_and_counted(
    database: Database, tenant_id: uuid.UUID
) -> None:
    bus = MemoryStreams()
    await bus.start()
    got = Collector()
    await bus.subscribe(["outbox.bad"], "g", got)
    ids = await emit(database, tenant_id, "outbox.bad", [("k", n) for n in range(3)])
    async with database.transaction(Scope.system()) as session:
        # A producer bug: an event type the envelope refuses.
        await session.execute(
            update(OutboxEvent).where(OutboxEvent.event_id == ids[1]).values(event_type="")
        )
    relay = OutboxRelay(database, bus, FAST)
    assert await relay.relay_once() == 2
    await got.count(2)
    assert [e.id for e in got.events] == [ids[0], ids[2]]
    assert value(relay.metrics.unpublishable, {"topic": "outbox.bad"}) == 1
    assert await unpublished(database) == 0, "skipped, so it stalls nothing"
    await bus.stop()


async def test_while_the_broker_is_down_the_backlog_is_kept(
    database: Database, tenant_id: uuid.UUID
) -> None:
    bus = FlakyStreams(failures=10**6)
    await bus.start()
    relay = OutboxRelay(database, bus, FAST)
    await emit(database, tenant_id, "outbox.down", [("k", n) for n in range(3)])
    await relay.start()
    try:
        await eventually(lambda: value(relay.metrics.failures) >= 3)
        await eventually(lambda: value(relay.metrics.backlog) == 3)
    finally:
        await relay.stop()
        await bus.stop()
    assert await unpublished(database) == 3


async def test_two_relays_on_one_postgres_publish_each_event_once_in_order(
    postgres_url: str, bus: Streams, unique: Names
) -> None:
    # PostgreSQL only: the publishing lock is PostgreSQL's, and SQLite runs one instance.
    await truncate_all(postgres_url)
    database_url = postgres_url
    first, second = (Database(DatabaseSettings(url=database_url)) for _ in range(2))
    async with first.transaction(Scope.system()) as session:
        tenant = Tenant(id=uuid.uuid4(), slug=f"t-{uuid.uuid4().hex[:8]}", name="Two")
        session.add(tenant)
    name = await topic(bus, unique)
    got = Collector()
    await bus.subscribe([name], unique("g"), got)
    relays = [OutboxRelay(db, bus, FAST) for db in (first, second)]
    try:
        for relay in relays:
            await relay.start()
        await eventually(lambda: sum(r.is_leader for r in relays) == 1)
        # Commits through both instances, so both are woken; only the leader publishes.
        for seq in range(0, 30, 3):
            db = (first, second)[seq % 2]
            await emit(db, tenant.id, name, [(k, s) for s in range(seq, seq + 3) for k in "ab"])
        await got.count(60)
        leader = next(r for r in relays if r.is_leader)
        follower = next(r for r in relays if not r.is_leader)
        # The leader goes away: the other takes the lock and carries on.
        await leader.stop()
        await emit(first, tenant.id, name, [(k, s) for s in range(30, 33) for k in "ab"])
        await got.count(66)
        assert follower.is_leader
        await asyncio.sleep(0.2)  # time for any (wrong) second publication to arrive
    finally:
        for relay in relays:
            await relay.stop()
        await first.dispose()
        await second.dispose()
    assert len(got.events) == 66
    assert len({e.id for e in got.events}) == 66
    assert per_key(got.events) == {k: list(range(33)) for k in "ab"}


async def test_published_rows_are_pruned_after_the_retention(
    database: Database, tenant_id: uuid.UUID
) -> None:
    bus = MemoryStreams()
    await bus.start()
    relay = OutboxRelay(database, bus, RelayOptions(retention=timedelta(hours=1)))
    await emit(database, tenant_id, "outbox.prune", [("k", n) for n in range(4)])
    assert await relay.relay_once() == 4
    await emit(database, tenant_id, "outbox.prune", [("k", 4)])
    async with database.transaction(Scope.system()) as session:
        old = utcnow() - timedelta(hours=2)
        rows = await session.execute(select(OutboxEvent.id).order_by(OutboxEvent.id).limit(2))
        await session.execute(
            update(OutboxEvent)
            .where(OutboxEvent.id.in_(rows.scalars().all()))
            .values(published_at=old)
        )
    assert await relay.prune() == 2
    async with database.session(Scope.system()) as session:
        left = (await session.execute(select(OutboxEvent.published_at))).scalars().all()
    assert len(left) == 3
    assert sum(p is None for p in left) == 1, "unpublished rows are never pruned"
    await bus.stop()
