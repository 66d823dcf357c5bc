"""Deletes consumers' processed event ids once no copy of their event can be delivered again.

`processed_events` gains a row per event per consumer group, forever, unless something removes
them. The ids only matter while the event can come back (a redelivery, a rebalance, a replay
from the topic's oldest retained offset), so rows older than `processed_retention_hours` go,
oldest first, in small batches of their own short transactions: a consumer claiming ids never
waits behind one long delete, and nothing of this runs on a consumer's path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from sqlalchemy import delete, select

from mitra.db import Database, Scope, db_purpose, utcnow
from mitra.models import ProcessedEvent
from mitra.settings import StreamsSettings

log = logging.getLogger("mitra.streams.processed")

# Between two batches: a long backlog (the first run after an upgrade) yields to other work.
BATCH_PAUSE_SECONDS = 0.05


async def prune_processed(database: Database, retention: timedelta, batch_size: int) -> int:
    """Delete the ids processed longer ago than `retention`, `batch_size` rows per transaction;
    returns how many went."""
    removed = 0
    while True:
        cutoff = utcnow() - retention
        oldest = (
            select(ProcessedEvent.id)
            .where(ProcessedEvent.processed_at < cutoff)
            .order_by(ProcessedEvent.processed_at)
            .limit(batch_size)
        )
        statement = delete(ProcessedEvent).where(ProcessedEvent.id.in_(oldest.scalar_subquery()))
        async with database.transaction(Scope.system()) as session:
            result = await session.execute(statement.execution_options(synchronize_session=False))
        count = int(getattr(result, "rowcount", 0) or 0)
        removed += count
        if count < batch_size:
            return removed
        await asyncio.sleep(BATCH_PAUSE_SECONDS)


class ProcessedPruner:
    """The background task running `prune_processed` every `processed_prune_interval_seconds`.

    Every instance runs one; deleting the same old rows twice is harmless, so no leader is
    needed.
    """

    def __init__(self, database: Database, settings: StreamsSettings) -> None:
        self._db = database
        self._retention = timedelta(hours=settings.processed_retention_hours)
        self._interval = settings.processed_prune_interval_seconds
        self._batch_size = settings.processed_prune_batch_size
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name="processed-events-pruner"
        )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            # Waiting first keeps the delete out of start-up, when every consumer is busiest.
            await asyncio.sleep(self._interval)
            try:
                with db_purpose("processed.prune"):
                    removed = await prune_processed(self._db, self._retention, self._batch_size)
                if removed:
                    log.info("pruned %d processed event ids", removed)
            except Exception:
                log.warning("could not prune processed event ids", exc_info=True)
