"""The migrations build exactly the schema the models declare, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

from mitra import migrate
from mitra.db import Base, Database
from mitra.settings import DatabaseSettings


async def test_models_and_migrations_agree(database_url: str) -> None:
    database = Database(DatabaseSettings(url=database_url))

    def differences(sync: Connection) -> list[Any]:
        context = MigrationContext.configure(sync, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))

    try:
        assert await migrate.is_up_to_date(database)
        async with database.engine.connect() as connection:
            assert await connection.run_sync(differences) == []
    finally:
        await database.dispose()
