"""Retention of the in-process backend: a bounded log, and groups that fall behind skip ahead."""

from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import AsyncIterator, Sequence

import pytest

from mitra.settings import StreamsSettings
from streams._memlog import Retention
from streams.envelope import Event
from streams.memory import MemoryStreams
from streams.topics import TopicSpec
from tests.streams.conftest import WAIT, Collector, eventually

ONE = TopicSpec("typing", 1)


def typing_frame(n: int) -> Event:
    """A small event, like the `typing` notices a chat floods the streams with."""
    return Event(type="chat.typing", tenant_id="t", key="conv-1", payload={"user": "u", "n": n})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def clock() -> Clock:
    return Clock()


@pytest.fixture
async def small(clock: Clock) -> AsyncIterator[MemoryStreams]:
    """A backend keeping 160 records of a partition (segments of 10) for an hour."""
    bus = MemoryStreams(retention=Retention(records=160, bytes=1 << 20, seconds=3600), clock=clock)
    await bus.start()
    await bus.ensure_topics([ONE])
    yield bus
    await bus.stop()


async def publish(bus: MemoryStreams, topic: str, events: Sequence[Event]) -> None:
    await bus.publish_batch([(topic, e.key, e.encode()) for e in events])


def skipped(bus: MemoryStreams, topic: str, group: str) -> float:
    try:
        return float(bus.metrics.retention_skipped.get({"topic": topic, "group": group}))  # type: ignore[arg-type]
    except KeyError:
        return 0.0


async def test_a_partition_keeps_its_record_bound_and_a_lagging_group_skips_ahead(
    small: MemoryStreams,
) -> None:
    release = asyncio.Event()
    got = Collector()

    async def slow(event: Event) -> None:
        await got(event)
        await release.wait()  # the group lags: it is stuck on its first event

    await small.subscribe(["typing"], "slow", slow)
    events = [typing_frame(n) for n in range(2000)]
    await publish(small, "typing", events[:1])
    await got.count(1)
    for at in range(1, len(events), 100):
        await publish(small, "typing", events[at : at + 100])

    log_ = small.partition("typing", 0)
    assert (log_.start, log_.end) == (1840, 2000)
    assert log_.records == 160, "at most the bound, and no less than 15/16 of it"
    assert small.metrics.retention_dropped.get({"topic": "typing"}) == 1840

    release.set()
    await got.count(1 + 160)
    # Event 0 was handled; 1 to 1839 were gone before the group got to them, and are counted.
    assert [e.payload["n"] for e in got.events] == [0, *range(1840, 2000)]
    assert skipped(small, "typing", "slow") == 1839

    # A group that starts now begins at the oldest retained record; it skipped nothing.
    late = Collector()
    await small.subscribe(["typing"], "late", late)
    await late.count(160)
    assert late.events[0].payload["n"] == 1840
    assert skipped(small, "typing", "late") == 0


async def test_records_older_than_the_age_bound_go_even_from_a_partition_nobody_writes(
    clock: Clock,
) -> None:
    bus = MemoryStreams(retention=Retention(records=1000, bytes=1 << 20, seconds=60), clock=clock)
    await bus.start()
    await bus.ensure_topics([ONE])
    try:
        await publish(bus, "typing", [typing_frame(n) for n in range(50)])
        clock.now += 30
        await publish(bus, "typing", [typing_frame(n) for n in range(50, 60)])
        clock.now += 31  # the first 50 are 61 s old, the last 10 are 31 s old
        assert bus.enforce_retention() == 50
        assert bus.partition("typing", 0).records == 10
        clock.now += 30
        assert bus.enforce_retention() == 10
        log_ = bus.partition("typing", 0)
        assert (log_.records, log_.bytes, log_.start, log_.end) == (0, 0, 60, 60)

        got = Collector()
        await bus.subscribe(["typing"], "g", got)
        await publish(bus, "typing", [typing_frame(60)])
        [event] = await got.count(1)
        assert event.payload["n"] == 60, "offsets carry on after everything expired"
    finally:
        await bus.stop()


async def test_a_flood_of_small_events_keeps_the_log_and_the_memory_bounded() -> None:
    bound = 64 * 1024
    bus = MemoryStreams(retention=Retention(records=1_000_000, bytes=bound, seconds=3600))
    await bus.start()
    frames = [(f"conv-{n % 40}", typing_frame(n)) for n in range(200)]

    async def flood(times: int) -> None:
        for _ in range(times):
            await bus.publish_batch([("chat.flood", key, e.encode()) for key, e in frames])

    try:
        await flood(50)  # 10,000 events: every partition is full from here on
        tracemalloc.start()
        await flood(10)
        steady, _ = tracemalloc.get_traced_memory()
        await flood(190)  # 38,000 more events, about 4 MiB of them
        after, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        parts = [bus.partition("chat.flood", p) for p in range(bus.partition_count("chat.flood"))]
        assert all(bound * 15 // 16 <= p.bytes <= bound for p in parts)
        records, size = bus.retained()
        assert size <= len(parts) * bound
        assert records == sum(p.records for p in parts)
        assert sum(p.end for p in parts) == 50_000
        # What the flood left allocated is a segment or so per partition, not its 5 MiB.
        assert after - steady < len(parts) * bound
    finally:
        await bus.stop()


async def test_the_sweeper_applies_the_age_bound_by_itself() -> None:
    bus = MemoryStreams(retention=Retention(records=1000, bytes=1 << 20, seconds=0.05))
    await bus.start()
    await bus.ensure_topics([ONE])
    try:
        await publish(bus, "typing", [typing_frame(n) for n in range(5)])
        await eventually(lambda: bus.partition("typing", 0).records == 0, within=WAIT)
    finally:
        await bus.stop()


def test_the_default_retention_is_the_settings_default() -> None:
    assert Retention() == Retention.from_settings(StreamsSettings())
    settings = StreamsSettings(memory_retention_records=64, memory_retention_bytes=32_768)
    retention = Retention.from_settings(settings)
    assert (retention.segment_records, retention.segment_bytes) == (4, 2048)


async def test_a_batch_is_not_cut_at_segment_boundaries(small: MemoryStreams) -> None:
    await publish(small, "typing", [typing_frame(n) for n in range(100)])  # ten segments
    batches: list[int] = []

    async def handler(events: Sequence[Event]) -> None:
        batches.append(len(events))

    await small.subscribe_batch(["typing"], "g", handler, max_batch=64)
    await eventually(lambda: sum(batches) == 100)
    assert batches == [64, 36]
