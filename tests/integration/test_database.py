"""The engine without a ping per checkout: read sessions, and reads that survive a dead
connection."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from handlers.keys import DATABASE
from mitra.db import Database, Scope, db_purpose
from mitra.models import Tenant, User
from mitra.settings import Settings
from tests.support.api import Api


async def test_no_pre_ping_and_a_recycle_age(settings: Settings) -> None:
    database = Database(settings.database)
    try:
        pool = database.engine.sync_engine.pool
        assert pool._pre_ping is False
        if not database.is_sqlite:
            assert pool._recycle == settings.database.pool_recycle_seconds
    finally:
        await database.dispose()


async def test_read_sessions_open_no_transaction_on_postgres(settings: Settings) -> None:
    database = Database(settings.database)
    if database.is_sqlite:
        await database.dispose()
        pytest.skip("pysqlite opens no transaction for a SELECT; ordinary sessions serve reads")

    async def in_transaction(session: AsyncSession) -> bool:
        await session.execute(select(Tenant.id))
        connection = await session.connection()
        assert connection.sync_connection is not None
        raw = connection.sync_connection.connection.driver_connection
        assert raw is not None
        return bool(raw.is_in_transaction())

    try:
        async with database.read_session(Scope.system()) as session:
            assert await in_transaction(session) is False
        # The pool's connections are not left in autocommit for the writers.
        for _ in range(3):
            async with database.session(Scope.system()) as session:
                assert await in_transaction(session) is True
    finally:
        await database.dispose()


async def test_a_read_is_retried_once_after_a_lost_connection(settings: Settings) -> None:
    database = Database(settings.database)
    attempts = 0

    async def work(session: AsyncSession) -> int:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise DBAPIError("SELECT 1", None, ConnectionError("gone"), connection_invalidated=True)
        return int((await session.execute(text("SELECT 1"))).scalar_one())

    async def always_fails(session: AsyncSession) -> int:
        raise DBAPIError("SELECT 1", None, ConnectionError("gone"), connection_invalidated=True)

    try:
        assert await database.read(Scope.system(), work) == 1
        assert attempts == 2
        with pytest.raises(DBAPIError):
            await database.read(Scope.system(), always_fails)
    finally:
        await database.dispose()


async def test_requests_survive_the_server_dropping_every_connection(api: Api) -> None:
    db = api.app[DATABASE]
    if db.is_sqlite:
        pytest.skip("SQLite has no server to drop connections")
    admin = await api.tenant()
    for _ in range(3):
        await api.call("GET", "/api/v1/policies", token=admin.access_token, expect=200)
    # Kill every pooled connection of this database from another session, as a server restart
    # or a proxy's idle timeout would.
    other = Database(db.settings)
    try:
        async with other.engine.connect() as connection:
            await connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
    finally:
        await other.dispose()
    for _ in range(3):
        await api.call("GET", "/api/v1/policies", token=admin.access_token, expect=200)


async def test_sync_reads_are_scoped_to_the_tenant_and_counted_under_their_purpose(
    api: Api,
) -> None:
    """`read_sync` (its own threads and connections on SQLite) keeps the tenant scope and the
    caller's `db_purpose`, as the async sessions do."""
    database = api.app[DATABASE]
    first = await api.tenant()
    await api.tenant()
    _, me = await api.call("GET", "/api/v1/users/me", token=first.access_token, expect=200)
    first_tenant = uuid.UUID(me["data"]["tenant_id"])

    def user_tenants(session: Session) -> set[uuid.UUID]:
        return set(session.scalars(select(User.tenant_id)))

    before = database.metrics.statements.get("test.sync", 0)
    with db_purpose("test.sync"):
        seen = await database.read_sync(Scope.tenant(first_tenant), user_tenants)
    assert seen == {first_tenant}
    assert database.metrics.statements.get("test.sync", 0) == before + 1
    everyone = await database.read_sync(Scope.system(), user_tenants)
    assert first_tenant in everyone
    assert len(everyone) >= 2  # the second tenant's admin was there, unseen by the first
