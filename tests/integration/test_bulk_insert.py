"""`BulkInsert` through the batch committer stores exactly what Core's insert stores, on SQLite
and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Table, insert, select, text
from sqlalchemy.exc import IntegrityError, OperationalError, StatementError

from handlers.keys import DATABASE
from mitra.db import BulkInsert, Database, Scope
from mitra.db._batch_commit import SqliteThreadCommitter
from mitra.models import OutboxEvent
from tests.support.api import Api

OUTBOX: Table = OutboxEvent.__table__  # type: ignore[assignment]
COLUMNS = ("event_id", "tenant_id", "topic", "key", "event_type", "payload", "occurred_at",
           "published_at", "created_at", "updated_at")  # fmt: skip


async def test_rows_read_back_the_same_as_rows_inserted_by_core(api: Api) -> None:
    admin = await api.tenant()
    _, me = await api.call("GET", "/api/v1/users/me", token=admin.access_token, expect=200)
    tenant_id = uuid.UUID(me["data"]["tenant_id"])
    ist = timezone(timedelta(hours=5, minutes=30))
    now = datetime(2026, 3, 1, 10, 0, 0, 123456, tzinfo=UTC)

    def row(topic: str, moment: datetime) -> tuple[object, ...]:
        payload = {"text": 'नमस्ते \u2028 "quoted"', "n": 1, "nested": {"ok": True}}
        return (uuid.uuid4(), tenant_id, topic, "k", "t", payload, moment, None, now, now)

    bulk_rows = [row("bulk", now), row("bulk", now.astimezone(ist)), row("bulk", now)]
    core_rows = [row("core", now), row("core", now.astimezone(ist)), row("core", now)]
    database = api.app[DATABASE]
    # The committer's own path: multi-row INSERTs on SQLite, unnest arrays on PostgreSQL.
    await database.batch_committer.commit([(BulkInsert(OUTBOX, COLUMNS), bulk_rows)])
    async with database.transaction(Scope.system()) as session:
        await session.execute(
            insert(OUTBOX), [dict(zip(COLUMNS, r, strict=True)) for r in core_rows]
        )
    async with database.session(Scope.system()) as session:
        stored = (await session.execute(select(OutboxEvent).order_by(OutboxEvent.id))).scalars()
        by_topic: dict[str, list[OutboxEvent]] = {}
        for event in stored:
            by_topic.setdefault(event.topic, []).append(event)
    for bulk, core in zip(by_topic["bulk"], by_topic["core"], strict=True):
        assert bulk.payload == core.payload
        assert bulk.occurred_at == core.occurred_at == now
        assert bulk.occurred_at.tzinfo is not None
        assert bulk.tenant_id == core.tenant_id == tenant_id
        assert bulk.published_at is None
        assert bulk.created_at == core.created_at == now
    assert [e.event_id for e in by_topic["bulk"]] == [r[0] for r in bulk_rows]


async def test_the_batch_committer_stores_all_or_nothing_and_names_the_refusal(api: Api) -> None:
    """On SQLite the committer runs on its own thread and connection; its errors are still
    SQLAlchemy's, and a refused batch leaves no row of itself behind."""
    admin = await api.tenant()
    _, me = await api.call("GET", "/api/v1/users/me", token=admin.access_token, expect=200)
    tenant_id = uuid.UUID(me["data"]["tenant_id"])
    now = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    database = api.app[DATABASE]
    outbox = BulkInsert(OUTBOX, COLUMNS)

    def row(event_id: uuid.UUID) -> tuple[object, ...]:
        return (event_id, tenant_id, "batch", "k", "t", {"n": 1}, now, None, now, now)

    taken = uuid.uuid4()
    await database.batch_committer.commit([(outbox, [row(taken), row(uuid.uuid4())])])
    fresh = uuid.uuid4()
    with pytest.raises(IntegrityError):
        # The first row is new, the second's event id is taken: neither may be stored.
        await database.batch_committer.commit([(outbox, [row(fresh), row(taken)])])
    with pytest.raises(StatementError):
        await database.batch_committer.commit([(outbox, [row("not-a-uuid")])])  # type: ignore[arg-type]
    stored = await _event_ids(database, "batch")
    assert taken in stored
    assert fresh not in stored
    assert len(stored) == 2


async def test_the_sqlite_committer_waits_for_the_write_lock_then_gives_up_cleanly(
    api: Api,
) -> None:
    """Another connection holding SQLite's write lock delays a chat batch, it does not lose it;
    a lock held past the committer's timeout fails the batch with the database's error and
    stores none of it."""
    database = api.app[DATABASE]
    if not database.is_sqlite:
        pytest.skip("the write lock is SQLite's")
    committer = database.batch_committer
    assert isinstance(committer, SqliteThreadCommitter)
    admin = await api.tenant()
    _, me = await api.call("GET", "/api/v1/users/me", token=admin.access_token, expect=200)
    tenant_id = uuid.UUID(me["data"]["tenant_id"])
    now = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    outbox = BulkInsert(OUTBOX, COLUMNS)

    def row(event_id: uuid.UUID) -> tuple[object, ...]:
        return (event_id, tenant_id, "locked", "k", "t", {"n": 1}, now, None, now, now)

    path = database.engine.url.database
    assert path
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    released = asyncio.get_running_loop().call_later(0.3, holder.execute, "COMMIT")
    waited = uuid.uuid4()
    await committer.commit([(outbox, [row(waited)])])
    assert not released.cancelled()

    holder.execute("BEGIN IMMEDIATE")
    committer.lock_timeout = 0.2
    given_up = uuid.uuid4()
    try:
        with pytest.raises(OperationalError, match="locked"):
            await committer.commit([(outbox, [row(given_up)])])
    finally:
        holder.execute("COMMIT")
        holder.close()
        committer.lock_timeout = 5.0
    stored = await _event_ids(database, "locked")
    assert stored == {waited}


async def test_a_batch_larger_than_one_statement_is_stored_whole(api: Api) -> None:
    """On SQLite the committer sends multi-row INSERTs, several when a batch has more values
    than one statement may bind; every row arrives, once."""
    admin = await api.tenant()
    _, me = await api.call("GET", "/api/v1/users/me", token=admin.access_token, expect=200)
    tenant_id = uuid.UUID(me["data"]["tenant_id"])
    now = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    database = api.app[DATABASE]
    ids = [uuid.uuid4() for _ in range(7_000)]
    rows = [
        (i, tenant_id, "big", "k", "t", {"n": n}, now, None, now, now) for n, i in enumerate(ids)
    ]
    await database.batch_committer.commit([(BulkInsert(OUTBOX, COLUMNS), rows)])
    async with database.session(Scope.system()) as session:
        stored = (
            await session.execute(
                select(OutboxEvent.event_id, OutboxEvent.payload).where(OutboxEvent.topic == "big")
            )
        ).all()
    assert sorted(stored, key=lambda r: r[1]["n"]) == [(i, {"n": n}) for n, i in enumerate(ids)]


async def test_sqlite_writes_reach_the_database_file_through_the_checkpointer(api: Api) -> None:
    """No writer's commit checkpoints the WAL (the chat's would wait for the disk): the
    checkpointer's thread copies committed rows into the database file within seconds."""
    database = api.app[DATABASE]
    if not database.is_sqlite:
        pytest.skip("the WAL is SQLite's")
    admin = await api.tenant()
    _, me = await api.call("GET", "/api/v1/users/me", token=admin.access_token, expect=200)
    tenant_id = uuid.UUID(me["data"]["tenant_id"])
    now = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    ids = [uuid.uuid4() for _ in range(2_000)]
    rows = [(i, tenant_id, "wal", "k", "t", {"n": 1}, now, None, now, now) for i in ids]
    await database.batch_committer.commit([(BulkInsert(OUTBOX, COLUMNS), rows)])
    path = database.engine.url.database
    assert path

    def in_the_file() -> int:
        # immutable: reads the database file alone, as if there were no WAL.
        with contextlib.closing(sqlite3.connect(f"file:{path}?immutable=1", uri=True)) as file:
            return int(
                file.execute("SELECT count(*) FROM outbox_events WHERE topic = 'wal'").fetchone()[0]
            )

    for _ in range(100):
        if await asyncio.to_thread(in_the_file) == len(ids):
            break
        await asyncio.sleep(0.1)
    assert await asyncio.to_thread(in_the_file) == len(ids)
    async with database.session(Scope.system()) as session:
        pragma = await session.execute(text("PRAGMA wal_autocheckpoint"))
        assert pragma.scalar_one() == 0


async def _event_ids(database: Database, topic: str) -> set[uuid.UUID]:
    async with database.session(Scope.system()) as session:
        found = await session.execute(
            select(OutboxEvent.event_id).where(OutboxEvent.topic == topic)
        )
        return set(found.scalars().all())
