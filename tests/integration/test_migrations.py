"""The migrations build exactly the schema the models declare, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

from mitra import migrate
from mitra.db import Base, Database, Scope, UTCDateTime, utcnow
from mitra.models import NO_AGENT, AnalyticsDaily, Tenant
from mitra.models.assistant import KB_FTS_TABLE, KB_TSVECTOR_INDEX
from mitra.settings import DatabaseSettings


async def test_models_and_migrations_agree(database_url: str) -> None:
    database = Database(DatabaseSettings(url=database_url))

    def differences(sync: Connection) -> list[Any]:
        context = MigrationContext.configure(
            sync, opts={"compare_type": True, "include_name": _not_full_text}
        )
        return list(compare_metadata(context, Base.metadata))

    try:
        assert await migrate.is_up_to_date(database)
        async with database.engine.connect() as connection:
            assert await connection.run_sync(differences) == []
    finally:
        await database.dispose()


def _not_full_text(name: str | None, kind: str, _parents: Any) -> bool:
    """The knowledge base's full-text objects are made by hand on the dialect that has them
    (an FTS5 table and its shadow tables on SQLite, an expression index on PostgreSQL)."""
    if kind == "table" and name is not None and name.startswith(KB_FTS_TABLE):
        return False
    return not (kind == "index" and name == KB_TSVECTOR_INDEX)


async def downgrade(database: Database, revision: str) -> None:
    def run(sync: Connection) -> None:
        command.downgrade(migrate.alembic_config(sync), revision)

    async with database.engine.begin() as connection:
        await connection.run_sync(run)


async def test_0005_merges_analytics_cells_split_over_rows_into_one(database_url: str) -> None:
    database = Database(DatabaseSettings(url=database_url))
    old_table = sa.table(
        "analytics_daily",
        *(sa.column(name, sa.Uuid()) for name in ("id", "tenant_id", "agent_id")),
        sa.column("day", sa.Date()),
        sa.column("metric", sa.String()),
        sa.column("dimension", sa.String()),
        sa.column("count", sa.Integer()),
        sa.column("amount", sa.Numeric(14, 2)),
        *(sa.column(name, UTCDateTime()) for name in ("created_at", "updated_at")),
    )
    tenant = Tenant(id=uuid.uuid4(), slug=f"t-{uuid.uuid4().hex[:8]}", name="Before 0005")
    agent = uuid.uuid4()

    def row(agent_id: uuid.UUID | None, metric: str, count: int, amount: str) -> dict[str, Any]:
        return {
            "id": uuid.uuid4(),
            "tenant_id": tenant.id,
            "agent_id": agent_id,
            "day": date(2025, 3, 15),
            "metric": metric,
            "dimension": "INR",
            "count": count,
            "amount": Decimal(amount),
            "created_at": utcnow(),
            "updated_at": utcnow(),
        }

    try:
        await downgrade(database, "0004")
        async with database.transaction(Scope.system()) as session:
            session.add(tenant)
        async with database.engine.begin() as connection:
            # What the old fold could leave behind when two consumers raced in a rebalance.
            await connection.execute(
                sa.insert(old_table),
                [
                    row(None, "payments_captured", 1, "10.50"),
                    row(None, "payments_captured", 2, "5.25"),
                    row(agent, "payments_captured", 1, "1.00"),
                    row(agent, "payments_captured", 3, "2.00"),
                    row(agent, "payments_failed", 1, "7.00"),
                ],
            )
    finally:
        await migrate.upgrade(database)  # back to head whatever happened: the schema is shared
    query = sa.select(
        AnalyticsDaily.agent_id,
        AnalyticsDaily.agent_key,
        AnalyticsDaily.metric,
        AnalyticsDaily.count,
        AnalyticsDaily.amount,
    ).where(AnalyticsDaily.tenant_id == tenant.id)
    try:
        async with database.engine.connect() as connection:
            cells = sorted(
                (str(a), k, m, c, n) for a, k, m, c, n in await connection.execute(query)
            )
    finally:
        await database.dispose()
    assert cells == sorted(
        [
            ("None", NO_AGENT, "payments_captured", 3, Decimal("15.75")),
            (str(agent), agent, "payments_captured", 4, Decimal("3.00")),
            (str(agent), agent, "payments_failed", 1, Decimal("7.00")),
        ]
    )
