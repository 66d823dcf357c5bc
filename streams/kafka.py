"""The Kafka streams backend (`kafka://host:port[,host:port]`) on aiokafka.

A broker that is down at start-up, or goes away later, is reported by `health()` and retried in
the background with exponential backoff; it never crashes the application.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from aiokafka.helpers import create_ssl_context
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
    sleep_or_stop,
)
from streams.envelope import Event
from streams.errors import BatchPublishFailed, StreamsError, StreamsUnavailable
from streams.metrics import StreamsMetrics
from streams.topics import TopicSpec, dead_letter_topic

log = logging.getLogger(__name__)

_TOPIC_ALREADY_EXISTS = 36


@dataclass(frozen=True)
class KafkaSecurity:
    """TLS and SASL settings for every Kafka client (producer, consumers, admin)."""

    security_protocol: str = "PLAINTEXT"  # PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL
    sasl_mechanism: str | None = None  # PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka's clients."""
        options: dict[str, Any] = {"security_protocol": self.security_protocol}
        if "SSL" in self.security_protocol:
            options["ssl_context"] = create_ssl_context(cafile=self.ssl_cafile)
        if self.security_protocol.startswith("SASL"):
            options["sasl_mechanism"] = self.sasl_mechanism or "PLAIN"
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = self.sasl_password
        return options


@dataclass(frozen=True)
class KafkaTuning:
    """Timeouts and backoffs; the defaults suit production, tests shorten the group ones."""

    session_timeout_ms: int = 6_000
    heartbeat_interval_ms: int = 500
    rebalance_timeout_ms: int = 30_000
    request_timeout_ms: int = 30_000
    publish_timeout: float = 10.0  # seconds a publish may wait for the broker
    reconnect_initial: float = 0.5  # first backoff after a failed connect, doubling ...
    reconnect_max: float = 30.0  # ... up to this
    health_interval: float = 5.0  # how often a connected backend checks the broker is still there
    max_poll_records: int = 500


def _backoff(tuning: KafkaTuning, attempt: int) -> float:
    return float(min(tuning.reconnect_max, tuning.reconnect_initial * 2 ** max(attempt - 1, 0)))


class KafkaStreams(Streams):
    """Streams on a Kafka cluster: an idempotent `acks=all` producer and one consumer per
    subscription, committing manually after each handled batch and on partition revocation."""

    def __init__(
        self,
        bootstrap_servers: str | Sequence[str],
        *,
        security: KafkaSecurity | None = None,
        tuning: KafkaTuning | None = None,
        enable_idempotence: bool = True,
        registry: Registry | None = None,
        client_id: str = "mitra",
        replication_factor: int = 1,
        topics: Iterable[TopicSpec] = (),
    ) -> None:
        if isinstance(bootstrap_servers, str):
            bootstrap_servers = bootstrap_servers.split(",")
        self.bootstrap_servers = [s.strip() for s in bootstrap_servers if s.strip()]
        self.security = security or KafkaSecurity()
        self.tuning = tuning or KafkaTuning()
        self.enable_idempotence = enable_idempotence
        self.metrics = StreamsMetrics(registry)
        self.client_id = client_id
        self.replication_factor = replication_factor
        self._startup_topics = list(topics)
        self._producer: AIOKafkaProducer | None = None
        self._connected = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._state = (False, "kafka: not started")
        self._subscriptions: set[KafkaSubscription] = set()

    def client_options(self) -> dict[str, Any]:
        return {
            "bootstrap_servers": self.bootstrap_servers,
            "client_id": self.client_id,
            "request_timeout_ms": self.tuning.request_timeout_ms,
            **self.security.client_options(),
        }

    @property
    def _where(self) -> str:
        return ",".join(self.bootstrap_servers)

    # --- lifecycle ---

    async def start(self) -> None:
        if self._task is not None:
            return
        self._stopping.clear()
        self._state = (False, f"kafka: connecting to {self._where}")
        self._task = asyncio.create_task(self._maintain(), name="streams-kafka-producer")

    async def stop(self) -> None:
        self._stopping.set()
        await asyncio.gather(*(s.stop() for s in list(self._subscriptions)))
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._close_producer()
        self._state = (False, "kafka: stopped")

    async def _close_producer(self) -> None:
        producer, self._producer = self._producer, None
        self._connected.clear()
        if producer is not None:
            with contextlib.suppress(Exception):
                await producer.stop()

    async def _maintain(self) -> None:
        """Connect (with backoff), then watch the broker; reconnect if the client breaks."""
        attempt = 0
        while not self._stopping.is_set():
            attempt += 1
            producer = AIOKafkaProducer(
                acks="all", enable_idempotence=self.enable_idempotence, **self.client_options()
            )
            try:
                await producer.start()
            except (KafkaError, OSError) as exc:
                with contextlib.suppress(Exception):
                    await producer.stop()
                delay = _backoff(self.tuning, attempt)
                self._state = (
                    False,
                    f"kafka: cannot reach {self._where} (attempt {attempt}, retry in "
                    f"{delay:.1f}s): {type(exc).__name__}: {exc}",
                )
                log.warning(self._state[1])
                await sleep_or_stop(self._stopping, delay)
                continue
            attempt = 0
            self._producer = producer
            self._connected.set()
            self._state = (True, f"kafka: connected to {self._where}")
            await self._create_startup_topics()
            await self._watch(producer)

    async def _watch(self, producer: AIOKafkaProducer) -> None:
        # aiokafka reconnects by itself; this only keeps health() truthful meanwhile.
        while not await sleep_or_stop(self._stopping, self.tuning.health_interval):
            try:
                async with asyncio.timeout(self.tuning.health_interval):
                    await producer.client.fetch_all_metadata()
            except (KafkaError, OSError, TimeoutError) as exc:
                self._state = (
                    False,
                    f"kafka: lost {self._where}: {type(exc).__name__}: {exc}",
                )
                log.warning(self._state[1])
            else:
                self._state = (True, f"kafka: connected to {self._where}")

    async def _create_startup_topics(self) -> None:
        if not self._startup_topics:
            return
        try:
            await self.ensure_topics(self._startup_topics)
        except (StreamsError, StreamsUnavailable):
            log.exception("could not create the catalog's topics")

    # --- topics ---

    async def ensure_topics(self, specs: Iterable[TopicSpec]) -> None:
        wanted = [
            NewTopic(s.name, s.partitions, self.replication_factor)
            for s in {s.name: s for s in specs}.values()
        ]
        if not wanted:
            return
        admin = AIOKafkaAdminClient(**self.client_options())
        try:
            await admin.start()
            response = await admin.create_topics(wanted)
        except (KafkaError, OSError) as exc:
            raise StreamsUnavailable(f"cannot create topics: {exc}") from exc
        finally:
            with contextlib.suppress(Exception):
                await admin.close()
        failed = [
            f"{name}: {message or code}"
            for name, code, message in (e[:3] for e in response.topic_errors)
            if code not in (0, _TOPIC_ALREADY_EXISTS)
        ]
        if failed:
            raise StreamsError("cannot create topics: " + "; ".join(failed))

    # --- publish and subscribe ---

    async def publish(self, topic: str, key: str, event: Event) -> None:
        if self._task is None:
            raise StreamsUnavailable("kafka streams are not started")
        try:
            async with asyncio.timeout(self.tuning.publish_timeout):
                await self._connected.wait()
                producer = self._producer
                assert producer is not None  # set before _connected
                await producer.send_and_wait(topic, event.encode(), key=key.encode())
        except TimeoutError as exc:
            raise StreamsUnavailable(f"publish to {topic} timed out; {self._state[1]}") from exc
        except KafkaError as exc:
            raise StreamsUnavailable(f"publish to {topic} failed: {exc}") from exc
        self.metrics.record_produced(topic)

    async def publish_batch(self, items: Sequence[PublishItem]) -> None:
        if not items:
            return
        if self._task is None:
            raise StreamsUnavailable("kafka streams are not started")
        # `send` only appends to the producer's per-partition buffers (it waits only for a new
        # topic's metadata or a full buffer), so the whole batch goes out in a few requests and
        # a partition's records keep the order given; the futures resolve as the broker
        # acknowledges them, and are awaited together.
        sent: list[asyncio.Future[Any]] = []
        error: BaseException | None = None
        try:
            async with asyncio.timeout(self.tuning.publish_timeout):
                await self._connected.wait()
                producer = self._producer
                assert producer is not None  # set before _connected
                for topic, key, value in items:
                    sent.append(await producer.send(topic, value, key=key.encode()))
                await asyncio.wait(sent)
        except TimeoutError as exc:
            error = StreamsUnavailable(f"publish timed out; {self._state[1]}")
            error.__cause__ = exc
        except KafkaError as exc:
            error = exc
        failed = set(range(len(sent), len(items)))
        produced: dict[str, int] = {}
        for index, future in enumerate(sent):
            if not future.done():
                # Still in the producer: it may yet arrive (a duplicate the consumers drop).
                future.add_done_callback(_retrieve)
                failed.add(index)
            elif future.cancelled() or future.exception() is not None:
                error = error or future.exception()
                failed.add(index)
            else:
                topic = items[index][0]
                produced[topic] = produced.get(topic, 0) + 1
        for topic, count in produced.items():
            self.metrics.record_produced(topic, count)
        if failed:
            raise BatchPublishFailed(
                f"{len(failed)} of {len(items)} records not acknowledged: {error!r}",
                failed=frozenset(failed),
            ) from error

    async def subscribe(
        self,
        topics: Sequence[str],
        group: str,
        handler: Handler,
        *,
        retry: RetryPolicy = DEFAULT_RETRY,
        offset_reset: str = "earliest",
    ) -> KafkaSubscription:
        if self._task is None:
            raise StreamsUnavailable("kafka streams are not started")
        if offset_reset not in ("earliest", "latest"):
            raise ValueError("offset_reset is 'earliest' or 'latest'")
        deliverer = Deliverer(group, handler, retry, self.publish, self.metrics)
        sub = KafkaSubscription(self, tuple(topics), group, deliverer, offset_reset)
        self._subscriptions.add(sub)
        sub.start()
        return sub

    async def subscribe_batch(
        self,
        topics: Sequence[str],
        group: str,
        handler: BatchHandler,
        *,
        retry: RetryPolicy = DEFAULT_RETRY,
        offset_reset: str = "earliest",
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> KafkaSubscription:
        if self._task is None:
            raise StreamsUnavailable("kafka streams are not started")
        if offset_reset not in ("earliest", "latest"):
            raise ValueError("offset_reset is 'earliest' or 'latest'")
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        deliverer = BatchDeliverer(group, handler, retry, self.publish, self.metrics)
        sub = KafkaSubscription(
            self, tuple(topics), group, deliverer, offset_reset, max_batch=max_batch
        )
        self._subscriptions.add(sub)
        sub.start()
        return sub

    def _forget(self, sub: KafkaSubscription) -> None:
        self._subscriptions.discard(sub)

    async def health(self) -> tuple[bool, str]:
        ok, detail = self._state
        for sub in self._subscriptions:
            sub_ok, sub_detail = sub.state
            if not sub_ok:
                ok, detail = False, f"{detail}; {sub_detail}"
        return ok, detail


def _retrieve(future: asyncio.Future[Any]) -> None:
    # A record given up on may still fail later; reading its outcome keeps asyncio from
    # logging "exception was never retrieved".
    if not future.cancelled():
        future.exception()


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, sub: KafkaSubscription) -> None:
        self.sub = sub

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.sub.on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.sub.on_assigned(assigned)


class KafkaSubscription(Subscription):
    """One consumer in a Kafka consumer group, run by a background task that reconnects."""

    def __init__(
        self,
        streams: KafkaStreams,
        topics: tuple[str, ...],
        group: str,
        deliverer: Deliverer | BatchDeliverer,
        offset_reset: str,
        *,
        max_batch: int | None = None,
    ) -> None:
        self.streams = streams
        self.topics = topics
        self.group = group
        self.state: tuple[bool, str] = (False, f"group {group}: joining")
        self._deliverer = deliverer
        self._offset_reset = offset_reset
        # A batch subscription gets what one poll returned, across partitions, in one call.
        self._batched = isinstance(deliverer, BatchDeliverer)
        self._max_poll_records = max_batch or streams.tuning.max_poll_records
        self._consumer: AIOKafkaConsumer | None = None
        self._processed: dict[TopicPartition, int] = {}  # next offset to commit, per partition
        # Held while a batch is handled, so a revocation waits for it and commits its offsets.
        self._batch_lock = asyncio.Lock()
        self._assignment: frozenset[TopicPartition] = frozenset()
        self._assigned = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"streams-kafka-{self.group}")

    def assignment(self) -> frozenset[tuple[str, int]]:
        return frozenset((tp.topic, tp.partition) for tp in self._assignment)

    async def wait_assigned(self) -> frozenset[tuple[str, int]]:
        await self._assigned.wait()
        return self.assignment()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            # Cancelling abandons a running handler: its event was not committed, so the
            # group redelivers it (at-least-once); what finished is committed in _run's finally.
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.streams._forget(self)

    # --- the consumer loop ---

    async def _run(self) -> None:
        attempt = 0
        streams = self.streams
        while not self._stopping.is_set():
            attempt += 1
            consumer = AIOKafkaConsumer(
                group_id=self.group,
                enable_auto_commit=False,
                auto_offset_reset=self._offset_reset,
                session_timeout_ms=streams.tuning.session_timeout_ms,
                heartbeat_interval_ms=streams.tuning.heartbeat_interval_ms,
                rebalance_timeout_ms=streams.tuning.rebalance_timeout_ms,
                max_poll_records=self._max_poll_records,
                **streams.client_options(),
            )
            consumer.subscribe(list(self.topics), listener=_Listener(self))
            try:
                # The dead-letter topic must exist before the first poison event needs it.
                await streams.ensure_topics([dead_letter_topic(self.group).spec()])
                await consumer.start()
            except (KafkaError, OSError, StreamsError, StreamsUnavailable) as exc:
                with contextlib.suppress(Exception):
                    await consumer.stop()
                delay = _backoff(streams.tuning, attempt)
                self.state = (False, f"group {self.group}: cannot join ({exc}); retry {delay:.1f}s")
                log.warning(self.state[1])
                await sleep_or_stop(self._stopping, delay)
                continue
            attempt = 0
            self._consumer = consumer
            self.state = (True, f"group {self.group}: consuming")
            try:
                await self._consume(consumer)
            except Exception as exc:
                self.state = (False, f"group {self.group}: consumer failed ({exc!r}); restarting")
                log.exception(self.state[1])
            finally:
                # Shielded so a stop() during shutdown still commits what was handled.
                await asyncio.shield(self._shutdown_consumer(consumer))
            if not self._stopping.is_set():
                await sleep_or_stop(self._stopping, _backoff(streams.tuning, 1))

    async def _shutdown_consumer(self, consumer: AIOKafkaConsumer) -> None:
        with contextlib.suppress(Exception):
            await self._commit(consumer)
        with contextlib.suppress(Exception):
            await consumer.stop()
        self._consumer = None
        self._processed.clear()
        self._assignment = frozenset()
        self._assigned.clear()

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        while not self._stopping.is_set():
            batches = await consumer.getmany(timeout_ms=500)
            if not batches:
                continue
            async with self._batch_lock:
                if self._batched:
                    await self._deliverer.deliver_all(
                        [_record(tp, r) for tp, records in batches.items() for r in records],
                        self._done,
                    )
                else:
                    # Partitions are independent: handle them side by side, each one in order.
                    async with asyncio.TaskGroup() as tg:
                        for tp, records in batches.items():
                            tg.create_task(self._handle(tp, records))
                await self._commit(consumer)

    async def _handle(self, tp: TopicPartition, records: list[ConsumerRecord[Any, Any]]) -> None:
        await self._deliverer.deliver_all([_record(tp, r) for r in records], self._done)

    def _done(self, record: Record) -> None:
        self._processed[TopicPartition(record.topic, record.partition)] = record.offset + 1

    async def _commit(
        self, consumer: AIOKafkaConsumer, only: Iterable[TopicPartition] = ()
    ) -> None:
        wanted = set(only) or set(self._processed)
        offsets = {tp: self._processed[tp] for tp in wanted if tp in self._processed}
        if not offsets:
            return
        try:
            await consumer.commit(offsets)
        except KafkaError as exc:
            # The group moved on (rebalance): the new owner re-reads from the last commit.
            log.warning("commit failed; events may be redelivered", extra={"error": repr(exc)})
        assigned = consumer.assignment()
        for tp, offset in offsets.items():
            self._processed.pop(tp, None)
            highwater = consumer.highwater(tp) if tp in assigned else None
            if highwater is not None:
                self.streams.metrics.set_lag(tp.topic, self.group, tp.partition, highwater - offset)

    # --- rebalance callbacks ---

    async def on_revoked(self, revoked: list[TopicPartition]) -> None:
        async with self._batch_lock:
            if self._consumer is not None:
                await self._commit(self._consumer, revoked)
            self._assignment = self._assignment - set(revoked)
            if not self._assignment:
                self._assigned.clear()

    def on_assigned(self, assigned: list[TopicPartition]) -> None:
        self._assignment = frozenset(assigned)
        if self._assignment:
            self._assigned.set()


def _record(tp: TopicPartition, r: ConsumerRecord[Any, Any]) -> Record:
    key = r.key.decode("utf-8", "replace") if r.key is not None else None
    return Record(tp.topic, tp.partition, r.offset, key, r.value)
