"""The in-process streams backend (`memory://`): Kafka's semantics on plain asyncio, no broker.

Topics have partitions chosen by the same murmur2 hash Kafka uses; consumer groups share
partitions among their members (round-robin, as aiokafka, rebalanced when a member joins or leaves);
offsets are committed per group and partition after the handler succeeded. A record whose
handler was cancelled (its member stopped) is not committed and goes to the next owner.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from aioprometheus.collectors import Registry

from streams._delivery import BatchDeliverer, Deliverer, Record
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


@dataclass(frozen=True)
class _Stored:
    key: bytes
    value: bytes


class _Partition:
    """An append-only log with a way to wait for the next append."""

    def __init__(self) -> None:
        self.records: list[_Stored] = []
        self._appended = asyncio.Event()

    @property
    def end(self) -> int:
        """The offset the next record will get."""
        return len(self.records)

    def append(self, records: Sequence[_Stored]) -> int:
        """Append `records` in order; returns the new end offset."""
        self.records.extend(records)
        # Wake every waiter, then arm a fresh event for the next append.
        appended, self._appended = self._appended, asyncio.Event()
        appended.set()
        return len(self.records)

    def read(self, offset: int, limit: int) -> list[tuple[int, _Stored]]:
        """Up to `limit` records from `offset` on, with their offsets."""
        return list(enumerate(self.records[offset : offset + limit], offset))

    async def wait_beyond(self, offset: int) -> None:
        while len(self.records) <= offset:
            await self._appended.wait()


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
            offset = 0 if self._offset_reset == "earliest" else log_.end

        def done(record: Record) -> None:
            committed[tp] = record.offset + 1

        handled = 0
        while not worker.revoking:
            if offset >= log_.end:
                await log_.wait_beyond(offset)
                continue
            records = [
                Record(topic, partition, at, stored.key.decode(), stored.value)
                for at, stored in log_.read(offset, self._batch)
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


class MemoryStreams(Streams):
    """The `memory://` backend: one process, the same semantics as Kafka, no durability."""

    def __init__(
        self,
        *,
        registry: Registry | None = None,
        default_partitions: int = 3,
        rebalance_timeout: float = 30.0,
        redelivery_backoff: float = 0.5,
    ) -> None:
        self.metrics = StreamsMetrics(registry)
        self.default_partitions = default_partitions
        self.rebalance_timeout = rebalance_timeout
        self.redelivery_backoff = redelivery_backoff
        self._topics: dict[str, list[_Partition]] = {}
        self._groups: dict[str, _Group] = {}
        self._subscriptions: set[MemorySubscription] = set()
        self._started = False

    async def start(self) -> None:
        self._started = True

    async def stop(self) -> None:
        self._started = False
        for sub in list(self._subscriptions):
            await sub.stop()

    def partition_count(self, topic: str) -> int:
        return len(self._topic(topic))

    def partition(self, topic: str, partition: int) -> _Partition:
        return self._topic(topic)[partition]

    def _topic(self, name: str, partitions: int | None = None) -> list[_Partition]:
        parts = self._topics.get(name)
        if parts is None:
            # Like a broker with auto-create on: unknown topics get the catalog's count.
            count = partitions or partitions_of(name, self.default_partitions)
            parts = self._topics[name] = [_Partition() for _ in range(count)]
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
        appends: dict[TP, list[_Stored]] = {}
        for topic, key, value in items:
            raw_key = key.encode()
            tp = (topic, partition_for(raw_key, len(self._topic(topic))))
            appends.setdefault(tp, []).append(_Stored(raw_key, value))
        produced: dict[str, int] = {}
        for (topic, partition), stored in appends.items():
            end = self.partition(topic, partition).append(stored)
            produced[topic] = produced.get(topic, 0) + len(stored)
            for group in self._groups.values():
                if topic in group.topics():
                    lag = end - group.committed.get((topic, partition), 0)
                    self.metrics.set_lag(topic, group.name, partition, lag)
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
        return self._started, (
            f"memory: {state}, {len(self._topics)} topics, {len(self._groups)} groups, "
            f"{len(self._subscriptions)} subscriptions"
        )
