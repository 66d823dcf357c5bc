"""Statements and commits by purpose: the two counts every hot path is judged by.

A caller names what its database work is for with `db_purpose("chat.write")`; engine events
count each statement sent to the driver and each commit under the purpose in effect (the
context variable reaches SQLAlchemy's greenlet, which shares the task's context). Counting is a
dict increment: an aioprometheus `inc` costs microseconds, too much per statement, so the
counters are copied into the registry when `/metrics` is scraped (`publish`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from aioprometheus.collectors import Counter, Registry
from sqlalchemy import Engine, event
from sqlalchemy.ext.asyncio import AsyncEngine

OTHER = "other"
_purpose: ContextVar[str] = ContextVar("mitra_db_purpose", default=OTHER)


@contextmanager
def db_purpose(name: str) -> Iterator[None]:
    """Count the statements and commits made inside the block (and tasks it starts) as `name`."""
    token = _purpose.set(name)
    try:
        yield
    finally:
        _purpose.reset(token)


def current_purpose() -> str:
    return _purpose.get()


class DbMetrics:
    """`mitra_db_statements_total` and `mitra_db_commits_total`, labelled by purpose."""

    def __init__(self) -> None:
        self.statements: dict[str, int] = {}
        self.commits: dict[str, int] = {}
        self._counters: tuple[Counter, Counter] | None = None

    def attach(self, engine: AsyncEngine | Engine) -> None:
        target = engine.sync_engine if isinstance(engine, AsyncEngine) else engine
        event.listen(target, "before_cursor_execute", self._on_statement)
        event.listen(target, "commit", self._on_commit)

    def register(self, registry: Registry) -> None:
        self._counters = (
            Counter(
                "mitra_db_statements_total",
                "SQL statements sent to the database, by purpose (an executemany counts once)",
                registry=registry,
            ),
            Counter("mitra_db_commits_total", "database commits, by purpose", registry=registry),
        )

    def publish(self) -> None:
        """Copy the counts into the registry's counters (called before a scrape)."""
        if self._counters is None:
            return
        statements, commits = self._counters
        for purpose, count in list(self.statements.items()):
            statements.set({"purpose": purpose}, count)
        for purpose, count in list(self.commits.items()):
            commits.set({"purpose": purpose}, count)

    def count(self, *, statements: int, commits: int) -> None:
        """Count work done outside the engine (the SQLite batch committer's own connection)."""
        purpose = _purpose.get()
        self.statements[purpose] = self.statements.get(purpose, 0) + statements
        self.commits[purpose] = self.commits.get(purpose, 0) + commits

    def _on_statement(self, *_: Any) -> None:
        purpose = _purpose.get()
        self.statements[purpose] = self.statements.get(purpose, 0) + 1

    def _on_commit(self, *_: Any) -> None:
        purpose = _purpose.get()
        self.commits[purpose] = self.commits.get(purpose, 0) + 1
