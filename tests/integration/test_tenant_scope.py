"""Tenant scoping is enforced by the session, not re-typed in each query."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import async_sessionmaker

from mitra.db import Database, Scope
from mitra.db._database import ScopeViolation
from mitra.models import Role, Tenant, User
from mitra.settings import Settings


async def _seed(database: Database) -> tuple[uuid.UUID, uuid.UUID]:
    async with database.transaction(Scope.system()) as session:
        tenants = [
            Tenant(id=uuid.uuid4(), slug=f"s-{uuid.uuid4().hex[:6]}", name="T") for _ in "ab"
        ]
        session.add_all(tenants)
        await session.flush()
        for tenant in tenants:
            for n in range(2):
                session.add(
                    User(
                        tenant_id=tenant.id,
                        email=f"{n}-{uuid.uuid4().hex[:6]}@example.com",
                        password_hash="x",
                        first_name="A",
                        last_name="B",
                        role=Role.JUNIOR_AGENT,
                    )
                )
    return tenants[0].id, tenants[1].id


async def test_queries_see_only_their_tenant(settings: Settings) -> None:
    database = Database(settings.database)
    try:
        mine, theirs = await _seed(database)
        async with database.session(Scope.tenant(mine)) as session:
            users = (await session.execute(select(User))).scalars().all()
            assert {user.tenant_id for user in users} == {mine}
            count = await session.scalar(select(func.count()).select_from(User))
            assert count == 2
            async with database.session(Scope.system()) as system:
                their_user = await system.scalar(
                    select(User.id).where(User.tenant_id == theirs).limit(1)
                )
            assert await session.get(User, their_user) is None
            # Bulk updates are scoped too: nothing of the other tenant changes.
            await session.execute(update(User).values(first_name="Changed"))
            await session.commit()
        async with database.session(Scope.system()) as session:
            changed = await session.scalar(
                select(func.count()).select_from(User).where(User.first_name == "Changed")
            )
            assert changed == 2
    finally:
        await database.dispose()


async def test_writing_another_tenants_row_is_refused(settings: Settings) -> None:
    database = Database(settings.database)
    try:
        mine, theirs = await _seed(database)
        async with database.session(Scope.tenant(mine)) as session:
            session.add(
                User(
                    tenant_id=theirs,
                    email="intruder@example.com",
                    password_hash="x",
                    first_name="I",
                    last_name="N",
                    role=Role.SUPER_ADMIN,
                )
            )
            with pytest.raises(ScopeViolation):
                await session.flush()
        async with database.session(Scope.system()) as session:
            found = await session.scalar(select(User).where(User.email == "intruder@example.com"))
            assert found is None
    finally:
        await database.dispose()


async def test_a_session_without_scope_is_refused(settings: Settings) -> None:
    database = Database(settings.database)
    try:
        bare = async_sessionmaker(database.engine)()
        with pytest.raises(ScopeViolation):
            await bare.execute(select(User))
        await bare.close()
    finally:
        await database.dispose()


async def test_the_cached_scope_of_one_tenant_never_serves_another(settings: Settings) -> None:
    # The tenant criteria is built once per tenant and the compiled statement is shared by all
    # tenants (the tenant id is a bound parameter): alternate tenants on the same statement.
    database = Database(settings.database)
    try:
        mine, theirs = await _seed(database)
        for _ in range(3):
            for tenant in (mine, theirs):
                async with database.read_session(Scope.tenant(tenant)) as session:
                    owners = set((await session.execute(select(User.tenant_id))).scalars())
                    ids = set(await session.scalars(select(User.id).where(User.is_active)))
                assert owners == {tenant}
                assert len(ids) == 2
                async with database.session(Scope.tenant(tenant)) as session:
                    await session.execute(update(User).values(last_name=str(tenant)))
                    await session.commit()
        async with database.session(Scope.system()) as session:
            rows = (await session.execute(select(User.tenant_id, User.last_name))).all()
        assert all(last_name == str(tenant) for tenant, last_name in rows)
    finally:
        await database.dispose()
