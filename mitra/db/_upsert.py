"""`INSERT ... ON CONFLICT` for the database at hand: the same SQL, a construct per dialect."""

from __future__ import annotations

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession


def conflict_insert(session: AsyncSession, table: Table) -> postgresql.Insert | sqlite.Insert:
    """An INSERT into `table` that takes `on_conflict_do_nothing` / `on_conflict_do_update`,
    for the dialect `session` is bound to (PostgreSQL, else SQLite, the only two Mitra runs on)."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)
