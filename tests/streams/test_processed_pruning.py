"""Processed event ids are kept for the replay retention and then deleted in batches."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from sqlalchemy import func, select, update

from mitra.db import Database, Scope, utcnow
from mitra.models import ProcessedEvent
from mitra.settings import StreamsSettings
from streams.processed import claim_many
from streams.processed_pruning import ProcessedPruner, prune_processed


async def _claimed(database: Database, group: str, count: int, age: timedelta) -> set[uuid.UUID]:
    ids = {uuid.uuid4() for _ in range(count)}
    async with database.transaction(Scope.system()) as session:
        assert await session.run_sync(claim_many, group, ids) == ids
        await session.execute(
            update(ProcessedEvent)
            .where(ProcessedEvent.event_id.in_(ids))
            .values(processed_at=utcnow() - age)
        )
    return ids


async def _left(database: Database) -> set[uuid.UUID]:
    async with database.session(Scope.system()) as session:
        return set((await session.scalars(select(ProcessedEvent.event_id))).all())


async def test_only_ids_older_than_the_retention_are_pruned(database: Database) -> None:
    old = await _claimed(database, "analytics", 7, timedelta(hours=50))
    recent = await _claimed(database, "analytics", 3, timedelta(hours=47))
    other_group = await _claimed(database, "billing", 2, timedelta(minutes=1))
    # Batches of 2: the 7 old ids take four transactions, and every one of them goes.
    assert await prune_processed(database, timedelta(hours=48), batch_size=2) == 7
    assert await _left(database) == recent | other_group
    assert await prune_processed(database, timedelta(hours=48), batch_size=2) == 0
    # A pruned id is claimable again: what the retention promises is that by then no copy of
    # its event is left to deliver.
    async with database.transaction(Scope.system()) as session:
        assert await session.run_sync(claim_many, "analytics", old) == old


async def test_the_pruner_runs_in_the_background_every_interval(database: Database) -> None:
    await _claimed(database, "analytics", 5, timedelta(days=30))
    kept = await _claimed(database, "analytics", 2, timedelta(days=1))
    settings = StreamsSettings(
        processed_retention_hours=24 * 14,
        processed_prune_interval_seconds=0.05,
        processed_prune_batch_size=2,
    )
    pruner = ProcessedPruner(database, settings)
    pruner.start()
    try:
        async with asyncio.timeout(10):
            while True:
                if await _left(database) == kept:
                    break
                await asyncio.sleep(0.05)
    finally:
        await pruner.stop()
    async with database.session(Scope.system()) as session:
        assert await session.scalar(select(func.count()).select_from(ProcessedEvent)) == 2
