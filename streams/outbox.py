"""The transactional outbox relay: publishes committed `outbox_events` rows in order, at least once.

A unit of work writes its events as rows in the same transaction as its data (`UnitOfWork.emit`).
The relay reads a batch of unpublished rows in `id` order (one SELECT of plain tuples), publishes
each as an `Event` envelope whose id is the row's `event_id` (one `publish_batch`), and only then
marks the batch published (one UPDATE): three steps per batch whatever its size. A crash between
publishing and marking publishes the same event ids again after the restart: nothing is lost,
and consumers de-duplicate by id.

Order: a batch goes to the broker in `id` order, so each key's rows reach their partition in
order. When some records fail, a key's rows are marked only up to its first failed one; the rest
of that key is published again in the next round, after the failed row. Only if the broker
accepted a later row of a key after refusing an earlier one (Kafka can: a batch that expired, a
record too large) does that later row appear twice, once before the earlier one.

On PostgreSQL only one relay publishes at a time, the holder of a session-level advisory lock on
its own connection; the others poll for the lock and take over when the leader's connection goes
away. SQLite is the single-instance embedded default, so there every relay publishes (run one
per database file).

`id` order is insertion order. Two transactions committing out of order can publish a later id
first; that is harmless because one key's events come from one writer at a time (its actor).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from aioprometheus.collectors import Counter, Gauge, Registry
from sqlalchemy import Row, Table, bindparam, delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import Session

from mitra.db import Database, Scope, db_purpose, utcnow
from mitra.models import OutboxEvent
from mitra.settings import StreamsSettings
from streams.base import PublishItem, Streams, sleep_or_stop
from streams.envelope import encode_envelope
from streams.errors import BatchPublishFailed, EnvelopeError

log = logging.getLogger(__name__)

ADVISORY_LOCK_KEY = 0x6D69_7472_6100_0001
"""The PostgreSQL advisory lock the leading relay holds ("mitra" + 1; any fixed int64 works)."""

_OUTBOX: Table = OutboxEvent.__table__  # type: ignore[assignment]
# Built once: a statement made per batch, with its ids as literal binds, left garbage that only
# the cycle collector frees, and was walked again for its cache key every time.
_MARK_PUBLISHED = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id.in_(bindparam("ids", expanding=True)))
    .values(published_at=bindparam("marked_at"))
)
# Core, not ORM: the relay needs eight values per row, not an identity-mapped object.
_COLUMNS = (
    _OUTBOX.c.id,
    _OUTBOX.c.event_id,
    _OUTBOX.c.topic,
    _OUTBOX.c.key,
    _OUTBOX.c.event_type,
    _OUTBOX.c.tenant_id,
    _OUTBOX.c.occurred_at,
    _OUTBOX.c.payload,
)


class OutboxMetrics:
    """`mitra_outbox_*`: backlog, published and failed publishes, and whether this is the leader."""

    def __init__(self, registry: Registry | None = None) -> None:
        # aioprometheus registers on its process-global registry unless given one; a private
        # registry keeps several relays (tests) from colliding on metric names.
        self.registry = registry if registry is not None else Registry()
        self.backlog = Gauge(
            "mitra_outbox_backlog",
            "Outbox rows committed but not yet published.",
            registry=self.registry,
        )
        self.published = Counter(
            "mitra_outbox_published_total",
            "Outbox events published, by topic (a re-publish after a crash counts again).",
            registry=self.registry,
        )
        self.failures = Counter(
            "mitra_outbox_publish_failures_total",
            "Relay rounds that failed (broker down, database error) and were retried.",
            registry=self.registry,
        )
        self.unpublishable = Counter(
            "mitra_outbox_unpublishable_total",
            "Outbox rows that are not a valid event envelope; logged and skipped.",
            registry=self.registry,
        )
        self.leader = Gauge(
            "mitra_outbox_leader",
            "1 while this instance's relay holds the publishing lock.",
            registry=self.registry,
        )


@dataclass(frozen=True)
class RelayOptions:
    """How the relay paces itself; `from_settings` reads the `[streams]` outbox keys."""

    poll_interval: float = 1.0
    batch_size: int = 200
    retention: timedelta = timedelta(hours=72)
    initial_backoff: float = 0.1
    max_backoff: float = 30.0
    prune_interval: float = 600.0
    stop_timeout: float = 5.0

    @classmethod
    def from_settings(cls, settings: StreamsSettings) -> RelayOptions:
        return cls(
            poll_interval=settings.outbox_poll_interval_seconds,
            batch_size=settings.outbox_batch_size,
            retention=timedelta(hours=settings.outbox_retention_hours),
            max_backoff=settings.outbox_max_backoff_seconds,
        )


class PublishFailed(Exception):
    """Some rows of a round could not be published; the published ones were marked."""


def envelope(row: Row[Any]) -> bytes:
    """The encoded event a row stands for; its id is the row's `event_id`, stable across
    re-publishes. Raises `EnvelopeError` for a row that can never be a valid event."""
    return encode_envelope(
        id=row.event_id,
        type=row.event_type,
        tenant_id=str(row.tenant_id),
        key=row.key,
        occurred_at=row.occurred_at,
        payload=row.payload,
    )


class OutboxRelay:
    """A background task that moves outbox rows to the streams backend (see the module doc)."""

    def __init__(
        self,
        database: Database,
        streams: Streams,
        options: RelayOptions | None = None,
        *,
        registry: Registry | None = None,
    ) -> None:
        self.database = database
        self.streams = streams
        self.options = options or RelayOptions()
        self.metrics = OutboxMetrics(registry)
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock_connection: AsyncConnection | None = None
        self._unregister: Callable[[], None] | None = None
        self._last_prune = 0.0
        self._last_backlog = 0.0
        self._fetch_query = (
            select(*_COLUMNS)
            .where(_OUTBOX.c.published_at.is_(None))
            .order_by(_OUTBOX.c.id)
            .limit(self.options.batch_size)
        )

    # --- lifecycle ---

    async def start(self) -> None:
        if self._task is not None:
            return
        loop = asyncio.get_running_loop()

        def wake() -> None:
            # Units of work may commit on another thread (an actor's); hop onto our loop.
            with contextlib.suppress(RuntimeError):  # the loop is closing
                loop.call_soon_threadsafe(self._wake.set)

        self._unregister = self.database.on_events_committed(wake)
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        """Finish the round in progress (up to `stop_timeout`), then release the lock."""
        if self._unregister is not None:
            self._unregister()
            self._unregister = None
        self._stopping.set()
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(task), self.options.stop_timeout)
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self._release_lock()
        self.metrics.leader.set({}, 0)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def is_leader(self) -> bool:
        return self.database.is_sqlite or self._lock_connection is not None

    def wake(self) -> None:
        """Look for rows now rather than at the next poll."""
        self._wake.set()

    # --- the loop ---

    async def _run(self) -> None:
        with db_purpose("outbox"):
            await self._relay_forever()

    async def _relay_forever(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                leader = await self._lead()
            except Exception:
                log.exception("outbox relay could not take the publishing lock")
                leader = False
            self.metrics.leader.set({}, 1 if leader else 0)
            await self._refresh_backlog()
            if not leader:
                await sleep_or_stop(self._stopping, self.options.poll_interval)
                continue
            # Cleared before reading, so a commit during this round triggers another one.
            self._wake.clear()
            try:
                published = await self.relay_once()
                await self._prune_now_and_then()
            except Exception as exc:
                failures += 1
                self.metrics.failures.inc({})
                delay = min(
                    self.options.max_backoff, self.options.initial_backoff * 2 ** (failures - 1)
                )
                log.warning(
                    "outbox relay round failed; retrying",
                    extra={"attempt": failures, "delay": delay, "error": repr(exc)},
                )
                await sleep_or_stop(self._stopping, delay)
                continue
            failures = 0
            if published >= self.options.batch_size or self._stopping.is_set():
                # A full batch (probably more waiting), or stop() was called during the round:
                # its wake-up may have been cleared above, so do not wait for another.
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.options.poll_interval)

    async def relay_once(self) -> int:
        """Publish one batch of unpublished rows and mark them; returns how many were published.

        Raises `PublishFailed` (after marking what did go out) when some rows could not be
        published; they stay unpublished and are retried, first, in the next round.
        """
        rows = await self._fetch()
        if not rows:
            return 0
        items: list[PublishItem] = []
        ids: list[int] = []
        skipped: list[int] = []
        for row in rows:
            try:
                value = envelope(row)
            except EnvelopeError as exc:
                # Such a row can never be published; leaving it would stall its key forever.
                log.error(
                    "outbox row is not a valid event; skipped",
                    extra={"event_id": str(row.event_id), "error": str(exc)},
                )
                self.metrics.unpublishable.inc({"topic": row.topic})
                skipped.append(row.id)
                continue
            items.append((row.topic, row.key, value))
            ids.append(row.id)
        failed: frozenset[int] = frozenset()
        error: Exception | None = None
        try:
            await self.streams.publish_batch(items)
        except BatchPublishFailed as exc:
            failed, error = exc.failed, exc
        except Exception as exc:
            failed, error = frozenset(range(len(items))), exc
        done = self._published(items, ids, failed)
        await self._mark(done + skipped)
        del items  # the encoded values are garbage from here on
        if error is not None:
            raise PublishFailed(
                f"{len(rows) - len(done) - len(skipped)} of {len(rows)} outbox events not"
                f" published: {error!r}"
            ) from error
        return len(done)

    def _published(
        self, items: list[PublishItem], ids: list[int], failed: frozenset[int]
    ) -> list[int]:
        """The ids to mark: every published row except a key's rows from its first failure on,
        so that those go out again after the failed row, never ahead of it."""
        done: list[int] = []
        stopped: set[tuple[str, str]] = set()
        published: dict[str, int] = {}
        for index, (topic, key, _) in enumerate(items):
            if index in failed or (topic, key) in stopped:
                stopped.add((topic, key))
                continue
            done.append(ids[index])
            published[topic] = published.get(topic, 0) + 1
        for topic, count in published.items():
            self.metrics.published.add({"topic": topic}, count)
        return done

    async def _fetch(self) -> list[Row[Any]]:
        # One SELECT: on PostgreSQL it runs in autocommit, with no BEGIN/ROLLBACK around it.
        def read(session: Session) -> list[Row[Any]]:
            return list(session.execute(self._fetch_query))

        return await self.database.read_sync(Scope.system(), read)

    async def _mark(self, ids: list[int]) -> None:
        if not ids:
            return
        values = {"ids": ids, "marked_at": utcnow()}

        def mark(session: Session) -> None:
            session.execute(_MARK_PUBLISHED, values)

        await self.database.write_sync(Scope.system(), mark)

    async def _prune_now_and_then(self) -> None:
        now = time.monotonic()
        if now - self._last_prune < self.options.prune_interval:
            return
        self._last_prune = now
        await self.prune()

    async def prune(self) -> int:
        """Delete rows published longer ago than the retention; returns how many."""
        cutoff = utcnow() - self.options.retention
        statement = delete(OutboxEvent).where(
            OutboxEvent.published_at.is_not(None), OutboxEvent.published_at < cutoff
        )
        async with self.database.transaction(Scope.system()) as session:
            result = await session.execute(statement.execution_options(synchronize_session=False))
        return int(getattr(result, "rowcount", 0) or 0)

    async def backlog(self) -> int:
        """Rows committed and not yet published."""
        query = select(func.count()).where(OutboxEvent.published_at.is_(None))
        async with self.database.session(Scope.system()) as session:
            return int((await session.execute(query)).scalar_one())

    async def _refresh_backlog(self) -> None:
        # One indexed count per poll interval at most, not per round.
        now = time.monotonic()
        if now - self._last_backlog < self.options.poll_interval:
            return
        self._last_backlog = now
        try:
            self.metrics.backlog.set({}, await self.backlog())
        except Exception:
            log.warning("could not count the outbox backlog", exc_info=True)

    # --- leadership (PostgreSQL) ---

    async def _lead(self) -> bool:
        """True if this relay may publish: always on SQLite; on PostgreSQL with the lock held."""
        if self.database.is_sqlite:
            return True
        connection = self._lock_connection
        if connection is not None:
            try:
                await connection.execute(text("SELECT 1"))
            except Exception:
                # Our session is gone, and the lock with it: another relay may lead now.
                log.warning("outbox relay lost its lock connection; leadership dropped")
                await self._release_lock()
            else:
                return True
        connection = await self.database.engine.connect()
        try:
            # Autocommit: the lock belongs to the session, and no transaction stays open.
            connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
            got = await connection.scalar(select(func.pg_try_advisory_lock(ADVISORY_LOCK_KEY)))
        except BaseException:
            await connection.close()
            raise
        if not got:
            await connection.close()
            return False
        self._lock_connection = connection
        log.info("outbox relay is the publishing leader")
        return True

    async def _release_lock(self) -> None:
        connection, self._lock_connection = self._lock_connection, None
        if connection is None:
            return
        try:
            await connection.execute(select(func.pg_advisory_unlock(ADVISORY_LOCK_KEY)))
        except Exception:
            # Never return a connection that may still hold the lock to the pool.
            with contextlib.suppress(Exception):
                await connection.invalidate()
        with contextlib.suppress(Exception):
            await connection.close()
