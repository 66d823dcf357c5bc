"""The engine, session factory and the one place where tenant scoping is enforced."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import ORMExecuteState, Session, with_loader_criteria

from mitra.db._base import TenantOwned
from mitra.db._metrics import DbMetrics
from mitra.db._uow import UnitOfWork
from mitra.settings import DatabaseSettings

_SCOPE_KEY = "mitra_scope"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Scope:
    """Whose rows a session may see: one tenant's, or (for auth and operations) all of them."""

    tenant_id: uuid.UUID | None

    @classmethod
    def tenant(cls, tenant_id: uuid.UUID) -> Scope:
        return cls(tenant_id)

    @classmethod
    def system(cls) -> Scope:
        return cls(None)


class ScopeViolation(RuntimeError):
    """A session tried to read or write rows outside its scope: a programming error."""


class Database:
    """Owns the async engine; every session it hands out carries an explicit `Scope`."""

    def __init__(self, settings: DatabaseSettings) -> None:
        self.settings = settings
        self.url: URL = make_url(settings.url)
        self.engine: AsyncEngine = _create_engine(settings, self.url)
        self.metrics = DbMetrics()
        self.metrics.attach(self.engine)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._events_committed: list[Callable[[], None]] = []

    @property
    def is_sqlite(self) -> bool:
        return self.url.get_backend_name() == "sqlite"

    def session(self, scope: Scope) -> AsyncSession:
        session = self._sessions()
        session.info[_SCOPE_KEY] = scope
        return session

    @asynccontextmanager
    async def transaction(self, scope: Scope) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction: committed on success, rolled back on error."""
        async with self.session(scope) as session, session.begin():
            yield session

    def unit_of_work(self, scope: Scope) -> AbstractAsyncContextManager[UnitOfWork]:
        return UnitOfWork.begin(self, scope)

    def on_events_committed(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` after every unit of work that emitted outbox events has committed.

        This is how the outbox relay wakes at once instead of waiting for its next poll, without
        the core knowing about streams. Callbacks run on the committing task's thread and must
        be quick and non-blocking (setting an event). Returns a function that unregisters it.
        """
        self._events_committed.append(callback)

        def unregister() -> None:
            if callback in self._events_committed:
                self._events_committed.remove(callback)

        return unregister

    def notify_events_committed(self) -> None:
        """Run the `on_events_committed` callbacks; one failing callback does not stop the rest."""
        for callback in list(self._events_committed):
            try:
                callback()
            except Exception:
                # A waker is a hint: the relay polls anyway, so a failure here loses nothing.
                log.exception("an events-committed callback failed")

    async def ping(self) -> None:
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


def _create_engine(settings: DatabaseSettings, url: URL) -> AsyncEngine:
    options: dict[str, Any] = {"echo": settings.echo}
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    else:
        options.update(pool_size=settings.pool_size, pool_pre_ping=True)
    engine = create_async_engine(url, **options)
    if url.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run beside the writer; busy_timeout queues writers instead of failing.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def session_scope(session: Session) -> Scope:
    scope = session.info.get(_SCOPE_KEY)
    if not isinstance(scope, Scope):
        raise ScopeViolation("session has no scope: open it with Database.session(scope)")
    return scope


@event.listens_for(Session, "do_orm_execute")
def _scope_queries(state: ORMExecuteState) -> None:
    scope = session_scope(state.session)
    if scope.tenant_id is None or not (state.is_select or state.is_update or state.is_delete):
        return
    tenant_id = scope.tenant_id
    state.statement = state.statement.options(
        with_loader_criteria(
            TenantOwned,
            lambda cls: cls.tenant_id == tenant_id,
            include_aliases=True,
        )
    )


@event.listens_for(Session, "before_flush")
def _scope_writes(session: Session, _context: Any, _instances: Any) -> None:
    scope = session_scope(session)
    if scope.tenant_id is None:
        return
    for obj in [*session.new, *session.dirty]:
        if not isinstance(obj, TenantOwned):
            continue
        # The column is typed non-null, but a new row may not have been given its tenant yet.
        owner: uuid.UUID | None = obj.tenant_id
        if owner is None and obj in session.new:
            obj.tenant_id = scope.tenant_id
        elif owner != scope.tenant_id:
            raise ScopeViolation(
                f"{type(obj).__name__} of tenant {owner} written in a session of {scope.tenant_id}"
            )
