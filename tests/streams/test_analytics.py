"""The analytics consumer: events in, figures out; redelivery and replay change nothing."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, select

from mitra import analytics as a
from mitra.auth.principal import Principal
from mitra.db import Database, Scope
from mitra.models import AnalyticsDaily, Role, Tenant
from mitra.settings import AnalyticsSettings
from streams.analytics import AnalyticsConsumer
from streams.base import RetryPolicy, Streams
from streams.envelope import Event
from streams.memory import MemoryStreams
from streams.topics import TopicSpec
from tests.streams.conftest import Collector, eventually

Names = Callable[[str], str]
# 20:00 UTC is 01:30 the next day in India: the day is counted in the analytics zone.
LATE_EVENING = datetime(2025, 3, 14, 20, 0, tzinfo=UTC)


def facts(tenant_id: uuid.UUID, agent: uuid.UUID, key: str | None = None) -> list[Event]:
    def fact(event_type: str, **fields: Any) -> Event:
        payload = a.AnalyticsFact(**fields).model_dump(mode="json", exclude_none=True)
        return Event(
            type=event_type,
            tenant_id=str(tenant_id),
            key=key or str(tenant_id),
            occurred_at=LATE_EVENING,
            payload=payload,
        )

    return [
        fact(a.MESSAGE_SENT, agent_id=agent, channel="whatsapp", direction="outbound"),
        fact(a.MESSAGE_SENT, agent_id=agent, channel="whatsapp", direction="outbound"),
        fact(a.MESSAGE_SENT, channel="app", direction="inbound"),
        fact(a.CONVERSATION_OPENED, agent_id=agent, channel="app"),
        fact(a.PAYMENT_CAPTURED, agent_id=agent, amount=Decimal("1500.50"), currency="INR"),
        fact(a.PAYMENT_CAPTURED, amount=Decimal("99.50")),
        fact(a.PAYMENT_FAILED, agent_id=agent, amount=Decimal("10.00")),
        fact(a.IMPORT_FINISHED, rows=10, failed_rows=2),
        fact(a.POLICY_CREATED, agent_id=agent),
        fact(a.POLICY_STATUS_CHANGED, agent_id=agent, to_status="lapsed"),
        fact(a.POLICY_STATUS_CHANGED, agent_id=agent, to_status="active"),
        fact("policy.renamed"),  # not counted: ignored, not dead-lettered
    ]


def outcomes(consumer: AnalyticsConsumer) -> dict[str, int]:
    totals: dict[str, int] = {}
    for labels, count in consumer.events.get_all():
        totals[labels["outcome"]] = totals.get(labels["outcome"], 0) + int(count)  # type: ignore[arg-type]
    return totals


async def figures(database: Database, tenant_id: uuid.UUID | None = None) -> list[tuple[Any, ...]]:
    """Every aggregate (of one tenant, or all), summed per cell."""
    query = select(
        AnalyticsDaily.day,
        AnalyticsDaily.agent_id,
        AnalyticsDaily.metric,
        AnalyticsDaily.dimension,
        AnalyticsDaily.count,
        AnalyticsDaily.amount,
    )
    if tenant_id is not None:
        query = query.where(AnalyticsDaily.tenant_id == tenant_id)
    cells: dict[tuple[Any, ...], tuple[int, Decimal]] = {}
    async with database.session(Scope.system()) as session:
        for day, agent, metric, dimension, count, amount in await session.execute(query):
            key = (day, str(agent), metric, dimension)
            before = cells.get(key, (0, Decimal(0)))
            cells[key] = (before[0] + count, before[1] + Decimal(str(amount)))
    return sorted((*k, c, m.quantize(Decimal("0.01"))) for k, (c, m) in cells.items())


async def test_events_fold_into_figures_once_even_when_delivered_again_or_replayed(
    database: Database, tenant_id: uuid.UUID, bus: Streams, unique: Names
) -> None:
    topic = unique("analytics")
    await bus.ensure_topics([TopicSpec(topic, 3)])
    service = a.AnalyticsService(database, AnalyticsSettings())
    agent = uuid.uuid4()
    events = facts(tenant_id, agent)
    consumer = AnalyticsConsumer(database, bus, service, group=unique("analytics"), topic=topic)
    await consumer.start()
    for event in events:
        await bus.publish(topic, event.key, event)
    await eventually(lambda: sum(outcomes(consumer).values()) == len(events))
    assert outcomes(consumer) == {"counted": 10, "ignored": 2}
    first = await figures(database)

    admin = Principal(uuid.uuid4(), tenant_id, Role.PROVIDER_ADMIN, uuid.uuid4(), "a@x.in")
    day = LATE_EVENING.date().replace(day=15)  # the next day in Asia/Kolkata
    board = await service.dashboard(admin, day, day)
    totals = {m: (f.count, f.amount) for m, f in board.totals.items()}
    assert totals == {
        a.MESSAGES: (3, None),
        a.MESSAGES_FAILED: (0, None),
        a.CONVERSATIONS_OPENED: (1, None),
        a.PAYMENTS_CAPTURED: (2, Decimal("1600.00")),
        a.PAYMENTS_FAILED: (1, Decimal("10.00")),
        a.PAYMENTS_REFUNDED: (0, Decimal("0.00")),
        a.IMPORTS_FINISHED: (1, None),
        a.IMPORT_ROWS: (10, None),
        a.POLICIES_CREATED: (1, None),
        a.POLICIES_LAPSED: (1, None),
        a.BOT_REPLIES: (0, None),
        a.BOT_ESCALATIONS: (0, None),
    }
    assert board.breakdown[a.MESSAGES]["whatsapp/outbound"].count == 2
    assert board.breakdown[a.IMPORT_ROWS]["failed"].count == 2
    assert list(board.series) == [day]
    mine = await service.dashboard(
        Principal(agent, tenant_id, Role.JUNIOR_AGENT, uuid.uuid4(), "j@x.in"), day, day
    )
    assert mine.totals[a.MESSAGES].count == 2
    assert mine.totals[a.PAYMENTS_CAPTURED].amount == Decimal("1500.50")

    # The same events again (a redelivery, a relay re-publishing after a crash): no change.
    for event in events:
        await bus.publish(topic, event.key, event)
    await eventually(lambda: outcomes(consumer).get("duplicate", 0) == 10)
    assert await figures(database) == first
    await consumer.stop()

    # Rebuild: a fresh group replays the topic from the start into empty aggregates.
    async with database.transaction(Scope.system()) as session:
        await session.execute(delete(AnalyticsDaily))
    replay = AnalyticsConsumer(database, bus, service, group=unique("rebuild"), topic=topic)
    await replay.start()
    await eventually(lambda: sum(outcomes(replay).values()) == 2 * len(events))
    await replay.stop()
    assert outcomes(replay) == {"counted": 10, "ignored": 4, "duplicate": 10}
    assert await figures(database) == first


async def publish_all(bus: Streams, topic: str, events: list[Event]) -> None:
    await bus.publish_batch([(topic, e.key, e.encode()) for e in events])


async def test_a_batch_with_duplicates_and_its_redelivery_count_each_fact_once(
    database: Database, tenant_id: uuid.UUID, bus: Streams, unique: Names
) -> None:
    topic = unique("analytics")
    await bus.ensure_topics([TopicSpec(topic, 3)])
    service = a.AnalyticsService(database, AnalyticsSettings())
    agent = uuid.uuid4()
    events = facts(tenant_id, agent)
    # Published before the consumer starts, so they are delivered together; three facts twice.
    await publish_all(bus, topic, [*events, *events[:3]])
    consumer = AnalyticsConsumer(database, bus, service, group=unique("analytics"), topic=topic)
    await consumer.start()
    await eventually(lambda: sum(outcomes(consumer).values()) == len(events) + 3)
    assert outcomes(consumer) == {"counted": 10, "ignored": 2, "duplicate": 3}
    once = await figures(database)
    messages = {(who, dim): n for _, who, metric, dim, n, _ in once if metric == a.MESSAGES}
    assert messages == {(str(agent), "whatsapp/outbound"): 2, ("None", "app/inbound"): 1}

    # The whole batch again (a relay re-publishing after a crash): nothing more is counted.
    await publish_all(bus, topic, events)
    await eventually(lambda: outcomes(consumer).get("duplicate", 0) == 3 + 10)
    assert await figures(database) == once
    await consumer.stop()


async def test_a_batch_folds_to_the_figures_of_one_event_at_a_time(
    database: Database, tenant_id: uuid.UUID
) -> None:
    async with database.transaction(Scope.system()) as session:
        other = Tenant(id=uuid.uuid4(), slug=f"t-{uuid.uuid4().hex[:8]}", name="Other")
        session.add(other)
    service = a.AnalyticsService(database, AnalyticsSettings())
    consumer = AnalyticsConsumer(database, MemoryStreams(), service, group="analytics")
    agents = [uuid.uuid4(), uuid.uuid4()]

    def both(owner: uuid.UUID) -> list[Event]:
        return [e for agent in agents for e in facts(owner, agent) for _ in range(2)]

    for event in both(tenant_id):
        await consumer.handle_batch([event])
    await consumer.handle_batch(both(other.id))

    assert await figures(database, other.id) == await figures(database, tenant_id)
    assert len(await figures(database, other.id)) > 10


async def test_a_batch_costs_two_statements_and_one_commit_whatever_its_size(
    database: Database, tenant_id: uuid.UUID
) -> None:
    bus = MemoryStreams()
    await bus.start()
    service = a.AnalyticsService(database, AnalyticsSettings())
    counts = database.metrics
    cost: dict[int, tuple[int, int]] = {}
    for size in (12, 240):
        agents = [uuid.uuid4() for _ in range(size // 12)]
        events = [e for agent in agents for e in facts(tenant_id, agent)]
        topic = f"analytics.cost.{size}"
        # One key, so one partition: the consumer gets the whole backlog as one batch.
        await publish_all(bus, topic, events)
        before = counts.statements.get("analytics", 0), counts.commits.get("analytics", 0)
        consumer = AnalyticsConsumer(database, bus, service, group=f"cost-{size}", topic=topic)
        await consumer.start()
        await eventually(lambda: sum(outcomes(consumer).values()) == len(events))  # noqa: B023
        await consumer.stop()
        after = counts.statements.get("analytics", 0), counts.commits.get("analytics", 0)
        cost[size] = (after[0] - before[0], after[1] - before[1])
    await bus.stop()
    # Claim the ids, upsert the cells: per batch, not per event (it was 2 and 1 per event).
    assert cost == {12: (2, 1), 240: (2, 1)}


async def test_a_counted_type_with_an_unusable_payload_is_dead_lettered_at_once(
    database: Database, tenant_id: uuid.UUID, bus: Streams, unique: Names
) -> None:
    topic, group = unique("analytics"), unique("analytics")
    await bus.ensure_topics([TopicSpec(topic, 3)])
    service = a.AnalyticsService(database, AnalyticsSettings())
    # Many slow attempts: passing quickly proves the bad payload was not retried.
    slow = RetryPolicy(max_attempts=10, initial_backoff=5.0, give_up_on=consumer_give_up())
    consumer = AnalyticsConsumer(database, bus, service, group=group, topic=topic, retry=slow)
    await consumer.start()
    dead = Collector()
    await bus.subscribe([f"dlq.{group}"], unique("watch"), dead)
    bad = Event(type=a.PAYMENT_CAPTURED, tenant_id=str(tenant_id), key="k", payload={})
    good = facts(tenant_id, uuid.uuid4(), key="k")
    # In one batch with good facts: only the bad one is parked, the others are counted.
    await publish_all(bus, topic, [*good[:5], bad, *good[5:]])
    [letter] = await dead.count(1)
    assert letter.payload["original"]["id"] == str(bad.id)
    assert "amount" in letter.payload["error"]["message"]
    await eventually(lambda: outcomes(consumer) == {"counted": 10, "ignored": 2})
    await consumer.stop()


def consumer_give_up() -> tuple[type[Exception], ...]:
    from streams.analytics import RETRY

    return RETRY.give_up_on
