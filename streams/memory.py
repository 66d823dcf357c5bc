"""The in-process streams backend (`memory://`): Kafka's semantics on plain asyncio, no broker.

Topics have partitions chosen by the same murmur2 hash Kafka uses; consumer groups share
partitions among their members (round-robin, as aiokafka, rebalanced when a member joins or leaves);
offsets are committed per group and partition after the handler succeeded. A record whose
handler was cancelled (its member stopped) is not committed and goes to the next owner.

Each partition keeps its records under a retention by count, size and age (`streams._memlog`,
settings `[streams] memory_retention_*`), so a flood of events costs bounded memory. A group
that falls behind the retained range skips ahead to the oldest retained offset, as a Kafka
consumer does after `OffsetOutOfRange`, and the records it missed are counted in
`mitra_streams_retention_skipped_total`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from aioprometheus.collectors import Registry

from streams._delivery import BatchDeliverer, Deliverer, Record
from streams._memlog import PartitionLog, Retention
from streams.base import (
    DEFAULT_MAX_BATCH,
    DEFAULT_RETRY,
    BatchHandler,
    Handler,
    PublishItem,
    RetryPolicy,
    Streams,
    Subscription,
)
from streams.envelope import Event
from streams.errors import StreamsUnavailable
from streams.metrics import StreamsMetrics
from streams.murmur2 import partition_for
from streams.topics import TopicSpec, partitions_of

log = logging.getLogger(__name__)

TP = tuple[str, int]
# A worker yields to the loop after this many records so a backlog cannot starve other tasks.
_YIELD_EVERY = 64


class _Group:
    """A consumer group: its members, its committed offsets, and the rebalance between them."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.members: list[MemorySubscription] = []
        self.committed: dict[TP, int] = {}
        self.lock = asyncio.Lock()

    def topics(self) -> set[str]:
        return {t for m in self.members for t in m.topics}

    async def join(self, member: MemorySubscription) -> None:
        async with self.lock:
            self.members.append(member)
            await self._rebalance()

    async def leave(self, member: MemorySubscription) -> None:
        async with self.lock:
            if member in self.members:
                self.members.remove(member)
            # A leaving member abandons what it is doing: uncommitted work is redelivered.
            await member.abandon()
            await self._rebalance()

    async def _rebalance(self) -> None:
        target = self._round_robin()
        # Every member gives up what it loses before anyone takes it over, as in Kafka, so one
        # partition is never handled by two members at once.
        await asyncio.gather(
            *(m.revoke(m.assignment() - target.get(m.member_id, frozenset())) for m in self.members)
        )
        for m in self.members:
            m.assign(target.get(m.member_id, frozenset()) - m.assignment())

    def _round_robin(self) -> dict[int, frozenset[TP]]:
        # aiokafka's default (RoundRobinPartitionAssignor): all partitions sorted, dealt in turn
        # to the members (sorted by id) that subscribe to the partition's topic.
        result: dict[int, set[TP]] = {m.member_id: set() for m in self.members}
        members = sorted(self.members, key=lambda m: m.member_id)
        turn = itertools.cycle(members)
        for topic in sorted(self.topics()):
            count = members[0].streams.partition_count(topic)
            for partition in range(count):
                member = next(turn)
                while topic not in member.topics:
                    member = next(turn)
                result[member.member_id].add((topic, partition))
        return {k: frozenset(v) for k, v in result.items()}


@dataclass
class _Worker:
    """The task consuming one partition; `busy` while a handler runs (it must not be cut off)."""

    task: asyncio.Task[None] = field(init=False)
    busy: bool = False
    revoking: bool = False


class MemorySubscription(Subscription):
    """One member of an in-memory consumer group; a task per owned partition."""

    _ids = itertools.count(1)

    def __init__(
        self,
        streams: MemoryStreams,
        group: _Group,
        topics: tuple[str, ...],
        deliverer: Deliverer | BatchDeliverer,
        offset_reset: str,
        *,
        batch: int = 1,
    ) -> None:
        self.streams = streams
        self.group = group.name
        self.topics = topics
        self.member_id = next(self._ids)
        self._group = group
        self._deliverer = deliverer
        self._offset_reset = offset_reset
        # Records handed over per delivery: 1 for a per-event handler, so that a revocation
        # waits for one event at most; up to `max_batch` for a batch handler.
        self._batch = batch
        self._workers: dict[TP, _Worker] = {}
        self._assigned = asyncio.Event()
        self._running = True

    def assignment(self) -> frozenset[TP]:
        return frozenset(self._workers)

    async def wait_assigned(self) -> frozenset[TP]:
        await self._assigned.wait()
        return self.assignment()

    @property
    def running(self) -> bool:
        return self._running

    async def stop(self) -> None:
        if not self._running:
            return
        self._running = False
        await self._group.leave(self)
        self.streams._forget(self)

    # --- called by the group, under its lock ---

    def assign(self, tps: Iterable[TP]) -> None:
        for tp in tps:
            worker = self._workers[tp] = _Worker()
            worker.task = asyncio.create_task(self._work(tp, worker), name=f"{self.group}:{tp}")
        if self._workers:
            self._assigned.set()
        else:
            self._assigned.clear()

    async def revoke(self, tps: Iterable[TP]) -> None:
        """Stop the given partitions' workers after the event each one is handling."""
        workers = [self._workers.pop(tp) for tp in tps]
        for w in workers:
            w.revoking = True
            if not w.busy:
                w.task.cancel()
        if workers:
            timeout = self.streams.rebalance_timeout
            _, late = await asyncio.wait([w.task for w in workers], timeout=timeout)
            for task in late:
                # Like Kafka evicting a member that misses the rebalance deadline.
                log.warning("handler exceeded the rebalance timeout; cancelling it")
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*(w.task for w in workers), return_exceptions=True)
        if not self._workers:
            self._assigned.clear()

    async def abandon(self) -> None:
        """Cancel every worker at once, committing nothing more (a crash or a stop)."""
        workers = list(self._workers.values())
        self._workers.clear()
        self._assigned.clear()
        for w in workers:
            w.task.cancel()
        await asyncio.gather(*(w.task for w in workers), return_exceptions=True)

    async def _work(self, tp: TP, worker: _Worker) -> None:
        topic, partition = tp
        log_ = self.streams.partition(topic, partition)
        committed = self._group.committed
        offset = committed.get(tp)
        if offset is None:
            offset = log_.start if self._offset_reset == "earliest" else log_.end

        def done(record: Record) -> None:
            committed[tp] = record.offset + 1

        handled = 0
        while not worker.revoking:
            if offset < log_.start:
                self._skip(tp, offset, log_.start)
                offset = log_.start
            if offset >= log_.end:
                await log_.wait_beyond(offset)
                continue
            records = [
                Record(topic, partition, at, key.decode(), value)
                for at, key, value in log_.read(offset, self._batch)
            ]
            worker.busy = True
            try:
                await self._deliverer.deliver_all(records, done)
            except Exception:
                # Dead-lettering failed: do not commit; read the record again after a pause.
                log.exception("delivery failed; the record will be redelivered")
                worker.busy = False
                await asyncio.sleep(self.streams.redelivery_backoff)
                offset = committed.get(tp, offset)
                continue
            worker.busy = False
            offset = records[-1].offset + 1
            self.streams.metrics.set_lag(topic, self.group, partition, log_.end - offset)
            handled += len(records)
            if handled >= _YIELD_EVERY:
                handled = 0
                await asyncio.sleep(0)

    def _skip(self, tp: TP, offset: int, start: int) -> None:
        topic, partition = tp
        log.warning(
            "consumer fell behind the retention; skipping ahead",
            extra={
                "group": self.group,
                "topic": topic,
                "partition": partition,
                "offset": offset,
                "skipped": start - offset,
            },
        )
        self.streams.metrics.record_retention_skip(topic, self.group, start - offset)


class MemoryStreams(Streams):
    """The `memory://` backend: one process, the same semantics as Kafka, no durability."""

    def __init__(
        self,
        *,
        registry: Registry | None = None,
        default_partitions: int = 3,
        rebalance_timeout: float = 30.0,
        redelivery_backoff: float = 0.5,
        retention: Retention | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.metrics = StreamsMetrics(registry)
        self.default_partitions = default_partitions
        self.rebalance_timeout = rebalance_timeout
        self.redelivery_backoff = redelivery_backoff
        self.retention = retention or Retention()
        self.clock = clock
        self._topics: dict[str, list[PartitionLog]] = {}
        self._groups: dict[str, _Group] = {}
        self._subscriptions: set[MemorySubscription] = set()
        self._started = False
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._started = True
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep(), name="streams-memory-retention")

    async def stop(self) -> None:
        self._started = False
        for sub in list(self._subscriptions):
            await sub.stop()
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper

    async def _sweep(self) -> None:
        # Appends apply the retention as they go; this is for partitions nobody writes to any
        # more, whose records would otherwise outlive the age bound (Kafka's periodic check).
        interval = min(60.0, self.retention.seconds / 4)
        while True:
            await asyncio.sleep(interval)
            self.enforce_retention()

    def enforce_retention(self) -> int:
        """Drop what the retention no longer covers in every partition now; returns how many
        records went (appends and a periodic sweep do this by themselves)."""
        now = self.clock()
        dropped = 0
        for topic, parts in self._topics.items():
            for log_ in parts:
                gone = log_.enforce(now)
                if gone:
                    self.metrics.record_retention_drop(topic, gone)
                    dropped += gone
        return dropped

    def retained(self) -> tuple[int, int]:
        """(records, bytes) retained over every partition: the log's own size accounting."""
        parts = [log_ for logs in self._topics.values() for log_ in logs]
        return sum(p.records for p in parts), sum(p.bytes for p in parts)

    def partition_count(self, topic: str) -> int:
        return len(self._topic(topic))

    def partition(self, topic: str, partition: int) -> PartitionLog:
        return self._topic(topic)[partition]

    def _topic(self, name: str, partitions: int | None = None) -> list[PartitionLog]:
        parts = self._topics.get(name)
        if parts is None:
            # Like a broker with auto-create on: unknown topics get the catalog's count.
            count = partitions or partitions_of(name, self.default_partitions)
            now = self.clock()
            parts = self._topics[name] = [PartitionLog(self.retention, now) for _ in range(count)]
        return parts

    async def ensure_topics(self, specs: Iterable[TopicSpec]) -> None:
        for spec in specs:
            self._topic(spec.name, spec.partitions)

    async def publish(self, topic: str, key: str, event: Event) -> None:
        await self.publish_batch([(topic, key, event.encode())])

    async def publish_batch(self, items: Sequence[PublishItem]) -> None:
        if not self._started:
            raise StreamsUnavailable("memory streams are not started")
        # Grouped by partition, in order, so each partition is appended to (and its consumers
        # woken) once per batch rather than once per record.
        appends: dict[TP, list[tuple[bytes, bytes]]] = {}
        for topic, key, value in items:
            raw_key = key.encode()
            tp = (topic, partition_for(raw_key, len(self._topic(topic))))
            appends.setdefault(tp, []).append((raw_key, value))
        now = self.clock()
        produced: dict[str, int] = {}
        for (topic, partition), records in appends.items():
            log_ = self.partition(topic, partition)
            dropped = log_.append(records, now)
            if dropped:
                self.metrics.record_retention_drop(topic, dropped)
            produced[topic] = produced.get(topic, 0) + len(records)
            for group in self._groups.values():
                if topic in group.topics():
                    position = max(group.committed.get((topic, partition), 0), log_.start)
                    self.metrics.set_lag(topic, group.name, partition, log_.end - position)
        for topic, count in produced.items():
            self.metrics.record_produced(topic, count)

    async def subscribe(
        self,
        topics: Sequence[str],
        group: str,
        handler: Handler,
        *,
        retry: RetryPolicy = DEFAULT_RETRY,
        offset_reset: str = "earliest",
    ) -> MemorySubscription:
        deliverer = Deliverer(group, handler, retry, self.publish, self.metrics)
        return await self._join(topics, group, deliverer, offset_reset, 1)

    async def subscribe_batch(
        self,
        topics: Sequence[str],
        group: str,
        handler: BatchHandler,
        *,
        retry: RetryPolicy = DEFAULT_RETRY,
        offset_reset: str = "earliest",
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> MemorySubscription:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        deliverer = BatchDeliverer(group, handler, retry, self.publish, self.metrics)
        return await self._join(topics, group, deliverer, offset_reset, max_batch)

    async def _join(
        self,
        topics: Sequence[str],
        group: str,
        deliverer: Deliverer | BatchDeliverer,
        offset_reset: str,
        batch: int,
    ) -> MemorySubscription:
        if not self._started:
            raise StreamsUnavailable("memory streams are not started")
        if offset_reset not in ("earliest", "latest"):
            raise ValueError("offset_reset is 'earliest' or 'latest'")
        for t in topics:
            self._topic(t)
        grp = self._groups.setdefault(group, _Group(group))
        sub = MemorySubscription(self, grp, tuple(topics), deliverer, offset_reset, batch=batch)
        self._subscriptions.add(sub)
        await grp.join(sub)
        return sub

    def _forget(self, sub: MemorySubscription) -> None:
        self._subscriptions.discard(sub)

    async def health(self) -> tuple[bool, str]:
        state = "started" if self._started else "stopped"
        records, size = self.retained()
        return self._started, (
            f"memory: {state}, {len(self._topics)} topics, {len(self._groups)} groups, "
            f"{len(self._subscriptions)} subscriptions, {records} records ({size} bytes) retained"
        )
