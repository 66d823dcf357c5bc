"""The one contract both backends keep; every test runs on memory:// and on a real broker."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from streams.base import RetryPolicy, Streams
from streams.envelope import Event
from streams.idempotency import InMemoryProcessedStore, idempotent
from streams.topics import DEAD_LETTER_EVENT_TYPE, DeadLetter, TopicSpec, dead_letter_topic
from tests.streams.conftest import WAIT, Collector, eventually

Names = Callable[[str], str]


def event(key: str, **payload: object) -> Event:
    return Event(type="test.happened", tenant_id="tenant-1", key=key, payload=payload)


async def topic(bus: Streams, unique: Names, partitions: int = 3) -> str:
    name = unique("events")
    await bus.ensure_topics([TopicSpec(name, partitions)])
    return name


async def test_publish_and_consume(bus: Streams, unique: Names) -> None:
    name = await topic(bus, unique)
    got = Collector()
    await bus.subscribe([name], unique("g"), got)
    sent = [event(f"k{i}", n=i) for i in range(5)]
    for e in sent:
        await bus.publish(name, e.key, e)

    received = await got.count(5)

    assert {e.id for e in received} == {e.id for e in sent}
    assert {e.id: e for e in received}[sent[2].id] == sent[2]


async def test_events_with_one_key_are_handled_in_order(bus: Streams, unique: Names) -> None:
    name = await topic(bus, unique)
    got = Collector()
    await bus.subscribe([name], unique("g"), got)
    for seq in range(20):
        for key in ("a", "b", "c"):
            await bus.publish(name, key, event(key, seq=seq))

    await got.count(60)

    per_key: dict[str, list[int]] = defaultdict(list)
    for e in got.events:
        per_key[e.key].append(int(e.payload["seq"]))
    assert per_key == {k: list(range(20)) for k in ("a", "b", "c")}


async def test_group_members_share_partitions_and_take_over(bus: Streams, unique: Names) -> None:
    name = await topic(bus, unique, partitions=4)
    group = unique("g")
    all_partitions = {(name, p) for p in range(4)}
    got_a, got_b = Collector(), Collector()
    a = await bus.subscribe([name], group, got_a)
    async with asyncio.timeout(WAIT):
        await a.wait_assigned()
    b = await bus.subscribe([name], group, got_b)

    def split() -> bool:
        mine, theirs = a.assignment(), b.assignment()
        return bool(mine) and bool(theirs) and not mine & theirs and mine | theirs == all_partitions

    await eventually(split)
    first = [event(f"key-{i}", phase=1) for i in range(40)]
    for e in first:
        await bus.publish(name, e.key, e)
    await eventually(lambda: len(got_a.events) + len(got_b.events) >= 40)
    assert got_a.events, "both members handle events"
    assert got_b.events, "both members handle events"
    assert {e.id for e in got_a.events} | {e.id for e in got_b.events} == {e.id for e in first}

    await b.stop()
    await eventually(lambda: a.assignment() == all_partitions)
    later = [event(f"key-{i}", phase=2) for i in range(40)]
    for e in later:
        await bus.publish(name, e.key, e)

    await got_a.until(lambda: {e.id for e in later} <= {e.id for e in got_a.events})


async def test_crashed_handler_event_is_redelivered(bus: Streams, unique: Names) -> None:
    name = await topic(bus, unique, partitions=1)
    group = unique("g")
    handled: list[Event] = []
    stuck = asyncio.Event()

    async def crashes_on_second(e: Event) -> None:
        if e.payload["n"] == 1:
            stuck.set()
            await asyncio.Event().wait()  # hangs until the subscription is stopped
        handled.append(e)

    first = await bus.subscribe([name], group, crashes_on_second)
    sent = [event("same-key", n=i) for i in range(3)]
    for e in sent:
        await bus.publish(name, e.key, e)
    async with asyncio.timeout(WAIT):
        await stuck.wait()
    await first.stop()  # the member dies with event 1 in its handler, uncommitted
    assert [e.id for e in handled] == [sent[0].id]

    again = Collector()
    await bus.subscribe([name], group, again)
    await again.count(2)

    # Event 0 was committed and is not seen again; events 1 and 2 are redelivered, in order.
    assert [e.id for e in again.events] == [sent[1].id, sent[2].id]


async def test_poison_event_goes_to_dead_letter_topic(bus: Streams, unique: Names) -> None:
    name = await topic(bus, unique, partitions=2)
    group = unique("g")
    attempts: dict[object, int] = defaultdict(int)
    handled = Collector()

    async def rejects_poison(e: Event) -> None:
        attempts[e.id] += 1
        if e.payload.get("poison"):
            raise ValueError("cannot digest this")
        await handled(e)

    dead = Collector()
    await bus.ensure_topics([dead_letter_topic(group).spec()])
    await bus.subscribe([dead_letter_topic(group).name], unique("dlq-reader"), dead)
    policy = RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.05)
    await bus.subscribe([name], group, rejects_poison, retry=policy)
    poison, good = event("k", poison=True), event("k", poison=False)
    await bus.publish(name, "k", poison)
    await bus.publish(name, "k", good)

    await handled.until(lambda: any(e.id == good.id for e in handled.events))
    letters = await dead.count(1)

    assert attempts[poison.id] == 3
    assert letters[0].type == DEAD_LETTER_EVENT_TYPE
    assert letters[0].key == "k"
    letter = DeadLetter.model_validate(letters[0].payload)
    assert letter.group == group
    assert letter.topic == name
    assert letter.offset >= 0
    assert 0 <= letter.partition < 2
    assert (letter.error.type, letter.error.message, letter.error.attempts) == (
        "ValueError",
        "cannot digest this",
        3,
    )
    assert letter.original is not None
    assert Event.model_validate(letter.original) == poison


async def test_duplicates_change_nothing_with_idempotency(bus: Streams, unique: Names) -> None:
    name = await topic(bus, unique, partitions=1)
    group = unique("g")
    effects: list[Event] = []
    seen_all = Collector()

    async def apply(e: Event) -> None:
        effects.append(e)

    store = InMemoryProcessedStore()
    once = idempotent(apply, store, group)

    async def handler(e: Event) -> None:
        await once(e)
        await seen_all(e)

    await bus.subscribe([name], group, handler)
    dup, other = event("k", n=1), event("k", n=2)
    for e in (dup, dup, other, dup):
        await bus.publish(name, e.key, e)

    await seen_all.count(4)

    assert [e.id for e in seen_all.events] == [dup.id, dup.id, other.id, dup.id]
    assert [e.id for e in effects] == [dup.id, other.id]


async def test_health_is_ok_when_running(bus: Streams) -> None:
    async def ok() -> bool:
        return (await bus.health())[0]

    await eventually(ok)
    _, detail = await bus.health()
    assert detail


async def test_metrics_count_produced_and_consumed(bus: Streams, unique: Names) -> None:
    name = await topic(bus, unique, partitions=1)
    group = unique("g")
    got = Collector()
    await bus.subscribe([name], group, got)
    for i in range(3):
        await bus.publish(name, "k", event("k", n=i))
    await got.count(3)

    metrics = bus.metrics

    def value(metric: Any, **labels: str) -> float | None:
        metrics.publish()  # as /metrics does before it renders
        return metric.get_value(labels) if labels in metric.values else None

    assert value(metrics.produced, topic=name) == 3
    await eventually(lambda: value(metrics.consumed, topic=name, group=group) == 3)
    await eventually(lambda: value(metrics.lag, topic=name, group=group, partition="0") == 0)


class Batches:
    """A batch handler that keeps every batch it is given."""

    def __init__(self) -> None:
        self.batches: list[list[Event]] = []

    async def __call__(self, events: Sequence[Event]) -> None:
        self.batches.append(list(events))

    @property
    def events(self) -> list[Event]:
        return [e for batch in self.batches for e in batch]


def orders(events: list[Event]) -> dict[str, list[int]]:
    keys: dict[str, list[int]] = defaultdict(list)
    for e in events:
        keys[e.key].append(int(e.payload["seq"]))
    return dict(keys)


async def test_a_batch_publish_arrives_whole_with_each_keys_order(
    bus: Streams, unique: Names
) -> None:
    name = await topic(bus, unique)
    got = Collector()
    await bus.subscribe([name], unique("g"), got)
    sent = [event(key, seq=seq) for seq in range(30) for key in ("a", "b", "c")]

    await bus.publish_batch([(name, e.key, e.encode()) for e in sent])

    await got.count(90)
    assert orders(got.events) == {k: list(range(30)) for k in ("a", "b", "c")}
    assert {e.id: e for e in got.events} == {e.id: e for e in sent}
    bus.metrics.publish()
    assert bus.metrics.produced.get({"topic": name}) == 90


async def test_a_batch_handler_gets_many_events_per_call_and_they_stay_committed(
    bus: Streams, unique: Names
) -> None:
    name, group = await topic(bus, unique), unique("g")
    sent = [event(key, seq=seq) for seq in range(40) for key in ("a", "b", "c", "d")]
    await bus.publish_batch([(name, e.key, e.encode()) for e in sent])
    got = Batches()

    first = await bus.subscribe_batch([name], group, got, max_batch=100)

    await eventually(lambda: len(got.events) == len(sent))
    assert orders(got.events) == {k: list(range(40)) for k in ("a", "b", "c", "d")}
    assert max(len(b) for b in got.batches) > 1, "events come together, not one per call"
    assert max(len(b) for b in got.batches) <= 100
    await first.stop()

    # A new member of the group starts after what was handled: nothing comes twice.
    later = Batches()
    await bus.subscribe_batch([name], group, later)
    last = event("a", seq=40)
    await bus.publish(name, "a", last)
    await eventually(lambda: len(later.events) == 1)
    assert later.events == [last]


async def test_a_batch_that_keeps_failing_is_delivered_one_event_at_a_time(
    bus: Streams, unique: Names
) -> None:
    name, group = await topic(bus, unique, partitions=1), unique("g")
    dead = Collector()
    await bus.ensure_topics([dead_letter_topic(group).spec()])
    await bus.subscribe([dead_letter_topic(group).name], unique("dlq-reader"), dead)
    calls: list[int] = []
    applied: list[Event] = []

    async def rejects_poison(events: Sequence[Event]) -> None:
        calls.append(len(events))
        if any(e.payload.get("poison") for e in events):
            raise ValueError("cannot digest this")
        applied.extend(events)

    sent = [event("k", seq=n, poison=n == 3) for n in range(6)]
    await bus.publish_batch([(name, e.key, e.encode()) for e in sent])
    policy = RetryPolicy(max_attempts=2, initial_backoff=0.01, max_backoff=0.05)
    await bus.subscribe_batch([name], group, rejects_poison, retry=policy)

    [letter] = await dead.count(1)
    await eventually(lambda: len(applied) == 5)
    assert [e.id for e in applied] == [e.id for e in sent if e is not sent[3]], "in order"
    assert DeadLetter.model_validate(letter.payload).original == sent[3].model_dump(mode="json")
    assert DeadLetter.model_validate(letter.payload).error.attempts == 2
    assert calls[0] > 1, "tried as a batch first"


async def test_a_batch_cut_off_by_a_crash_is_redelivered_whole(bus: Streams, unique: Names) -> None:
    name, group = await topic(bus, unique, partitions=1), unique("g")
    stuck = asyncio.Event()

    async def hangs(_: Sequence[Event]) -> None:
        stuck.set()
        await asyncio.Event().wait()

    sent = [event("k", seq=n) for n in range(5)]
    await bus.publish_batch([(name, e.key, e.encode()) for e in sent])
    first = await bus.subscribe_batch([name], group, hangs)
    async with asyncio.timeout(WAIT):
        await stuck.wait()
    await first.stop()

    again = Batches()
    await bus.subscribe_batch([name], group, again)
    await eventually(lambda: len(again.events) == 5)
    assert [e.id for e in again.events] == [e.id for e in sent]
