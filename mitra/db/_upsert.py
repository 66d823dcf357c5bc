"""`INSERT ... ON CONFLICT` for the database at hand: the same SQL, a construct per dialect."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

Statement = TypeVar("Statement")
ConflictInsert = postgresql.Insert | sqlite.Insert


def conflict_insert(session: AsyncSession, table: Table) -> ConflictInsert:
    """An INSERT into `table` that takes `on_conflict_do_nothing` / `on_conflict_do_update`,
    for the dialect `session` is bound to (PostgreSQL, else SQLite, the only two Mitra runs on)."""
    return _insert(session.get_bind().dialect.name, table)


def _insert(dialect: str, table: Table) -> ConflictInsert:
    if dialect == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


_BUILT: dict[tuple[str, Table, Callable[..., Any]], Any] = {}


def prebuilt_upsert(
    session: AsyncSession | Session, table: Table, build: Callable[[ConflictInsert], Statement]
) -> Statement:
    """`build(conflict_insert(...))`, made once per dialect and reused; execute it with the
    rows as parameters.

    For upserts on hot paths: an upsert's `excluded` alias is a web of column proxies that
    only the cycle collector frees, and building one per batch filled every young collection
    with tens of thousands of such objects (40 ms pauses at 1,000 chat messages/s). A reused
    statement also keeps its cache key, so SQLAlchemy does not walk it again.
    """
    dialect = session.get_bind().dialect.name
    key = (dialect, table, build)
    statement = _BUILT.get(key)
    if statement is None:
        statement = _BUILT[key] = build(_insert(dialect, table))
    return statement
