"""Processed event ids in the database, recorded in the same transaction as a consumer's writes.

`consume_once` is the way a consumer with database effects becomes idempotent:

    async def handle(event: Event) -> None:
        async with consume_once(database, "billing", event) as session:
            if session is None:
                return  # this group applied the event before: a redelivery or a replay
            session.add(...)  # the effects; committed together with the event id

The id is claimed first (an INSERT that does nothing when the row exists), so two members of a
group that briefly handle the same event (a rebalance) cannot both apply it: on PostgreSQL the
second INSERT waits for the first transaction and then inserts nothing. A handler that raises
rolls back its writes and the claim together, so the retry starts clean. A batch consumer claims
all its events' ids with one statement (`claim_many`) and applies only those it got.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

from sqlalchemy import Executable, Table, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from mitra.db import ConflictInsert, Database, Scope, prebuilt_upsert, utcnow
from mitra.models import ProcessedEvent
from streams.envelope import Event

_PROCESSED: Table = ProcessedEvent.__table__  # type: ignore[assignment]


def _row(group: str, event_id: uuid.UUID) -> dict[str, object]:
    now = utcnow()
    return {
        "id": uuid.uuid4(),
        "group": group,
        "event_id": event_id,
        "processed_at": now,
        "created_at": now,
        "updated_at": now,
    }


async def claim(session: AsyncSession, group: str, event_id: uuid.UUID) -> bool:
    """Record that `group` processed `event_id` in `session`'s transaction; False if it had."""
    statement = prebuilt_upsert(session, _PROCESSED, _insert_unless_claimed)
    result = await session.execute(statement, _row(group, event_id))
    return bool(getattr(result, "rowcount", 0) == 1)


def claim_many(session: Session, group: str, event_ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
    """Record that `group` processed each of `event_ids`, in one statement of `session`'s
    transaction; returns the ids it had not processed before, the ones to apply now.

    Sync, for `Database.write_sync` (an async session calls it through `run_sync`)."""
    # Sorted, so that two members claiming overlapping batches on PostgreSQL wait for each
    # other in one order rather than deadlock.
    rows = [_row(group, event_id) for event_id in sorted(set(event_ids))]
    if not rows:
        return set()
    statement = prebuilt_upsert(session, _PROCESSED, _claimed_ids)
    # An executemany with RETURNING: SQLAlchemy sends it as one multi-row INSERT (per 1,000
    # rows), and returns only the rows it inserted.
    result = session.execute(statement, rows)
    # asyncpg returns its own UUID class; made plain so the ids match the caller's.
    return {uuid.UUID(str(event_id)) for event_id in result.scalars()}


def _insert_unless_claimed(insert: ConflictInsert) -> ConflictInsert:
    return insert.on_conflict_do_nothing(index_elements=["group", "event_id"])


def _claimed_ids(insert: ConflictInsert) -> Executable:
    return _insert_unless_claimed(insert).returning(_PROCESSED.c.event_id)


@asynccontextmanager
async def consume_once(
    database: Database, group: str, event: Event, *, scope: Scope | None = None
) -> AsyncIterator[AsyncSession | None]:
    """A transaction for applying `event` once per `group`; yields None if it was applied before.

    The session is scoped to the event's tenant unless `scope` says otherwise, so a consumer
    cannot write another tenant's rows by mistake.
    """
    if scope is None:
        scope = Scope.tenant(uuid.UUID(event.tenant_id))
    async with database.transaction(scope) as session:
        if not await claim(session, group, event.id):
            yield None
            return
        yield session


class DatabaseProcessedStore:
    """A `ProcessedStore` over the `processed_events` table (see `streams.idempotency`).

    `record` commits on its own, so with `idempotent()` a crash between the handler and the
    record still runs the handler again; handlers that write to the database should use
    `consume_once` instead, which records in their own transaction.
    """

    def __init__(self, database: Database) -> None:
        self.database = database

    async def seen(self, group: str, event_id: uuid.UUID) -> bool:
        query = select(ProcessedEvent.id).where(
            ProcessedEvent.group == group, ProcessedEvent.event_id == event_id
        )
        async with self.database.session(Scope.system()) as session:
            return (await session.execute(query.limit(1))).first() is not None

    async def record(self, group: str, event_id: uuid.UUID) -> None:
        async with self.database.transaction(Scope.system()) as session:
            await claim(session, group, event_id)
