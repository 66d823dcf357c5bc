"""The engine, session factory and the one place where tenant scoping is enforced."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import orjson
from sqlalchemy import bindparam, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker, with_loader_criteria
from sqlalchemy.orm.interfaces import ORMOption
from sqlalchemy.sql import Executable
from sqlalchemy.sql.elements import BindParameter

from mitra.db._base import TenantOwned
from mitra.db._batch_commit import BatchCommitter, SqliteThreadCommitter, UnnestCommitter
from mitra.db._checkpoint import Checkpointer, leave_checkpoints_alone
from mitra.db._metrics import DbMetrics
from mitra.db._uow import UnitOfWork
from mitra.settings import DatabaseSettings

_SCOPE_KEY = "mitra_scope"
log = logging.getLogger(__name__)
T = TypeVar("T")
_S = TypeVar("_S", bound=Executable)


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
        # Reads that are one statement (or a page and its count) need no transaction. On
        # PostgreSQL asyncpg would otherwise send BEGIN before and ROLLBACK after them: two round
        # trips more than the SELECT. Autocommit shares the pool (it is a flag on the connection,
        # reset when the connection returns). SQLite's driver never opens a transaction for a
        # SELECT anyway, so there the ordinary sessions serve.
        if self.is_sqlite:
            self._read_sessions = self._sessions
        else:
            self._read_sessions = async_sessionmaker(
                self.engine.execution_options(isolation_level="AUTOCOMMIT"),
                expire_on_commit=False,
            )
        self._events_committed: list[Callable[[], None]] = []
        self.batch_committer: BatchCommitter
        self._sqlite_threads: _SqliteThreads | None = None
        self._checkpointer: Checkpointer | None = None
        path = _sqlite_file(self.url)
        if path is None:
            self.batch_committer = UnnestCommitter(self.engine, self.metrics)
            return
        committer = SqliteThreadCommitter(
            path,
            self.engine.dialect,
            self.metrics,
            configure=partial(_sqlite_pragmas, checkpointed=True),
        )
        self.batch_committer = committer
        # `write_sync` shares the chat committer's thread: the process's SQLite writes then
        # take turns there instead of finding SQLite's write lock taken and polling for it.
        self._sqlite_threads = _SqliteThreads(self.url, settings, self.metrics, committer.thread)
        self._checkpointer = Checkpointer(path)

    @property
    def is_sqlite(self) -> bool:
        return self.url.get_backend_name() == "sqlite"

    def session(self, scope: Scope) -> AsyncSession:
        session = self._sessions()
        session.info[_SCOPE_KEY] = scope
        return session

    def read_session(self, scope: Scope) -> AsyncSession:
        """A session for reads only; on PostgreSQL every statement is its own transaction.

        Safe for a read that is one statement. A read of several statements sees each one's own
        snapshot: fine for a page and its total (a concurrent insert can make them differ by a
        row, as it could between two requests), wrong for anything that must agree across
        statements or that writes; use `session` or `transaction` for those.
        """
        session = self._read_sessions()
        session.info[_SCOPE_KEY] = scope
        return session

    async def read(self, scope: Scope, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """Run the idempotent read `work` in a read session; retry it once on a fresh connection
        if the first one turned out to be dead (there is no ping per checkout: a server restart
        or a proxy's idle timeout shows up as a disconnect error on first use)."""
        for attempt in (1, 2):
            try:
                async with self.read_session(scope) as session:
                    return await work(session)
            except DBAPIError as exc:
                if attempt == 2 or not exc.connection_invalidated:
                    raise
                log.warning("database connection lost; retrying the read once")
        raise AssertionError("unreachable")

    async def read_sync(self, scope: Scope, work: Callable[[Session], T]) -> T:
        """Run the idempotent read `work`, written against a plain (sync) session.

        On a SQLite file it runs on a small pool of threads with their own connections: one
        trip from the event loop per read. Through aiosqlite every statement, cursor and
        reset is a trip of its own, each answer waiting for its turn on a busy loop (a REST
        read cost three times the CPU it costs on PostgreSQL). Elsewhere it runs in a read
        session through `run_sync` (asyncpg has no threads to save), retried as `read` is.
        The tenant scope is enforced by the same session hooks either way.
        """
        if self._sqlite_threads is not None:
            return await self._sqlite_threads.run(scope, work)
        return await self.read(scope, lambda session: session.run_sync(work))

    async def write_sync(self, scope: Scope, work: Callable[[Session], T]) -> T:
        """Run `work`, written against a plain (sync) session, in one transaction.

        For short writes beside the chat's (the outbox relay's marks, the analytics fold). On
        a SQLite file the whole transaction runs in one trip to the thread the chat's batches
        are committed on, between two of them. Through
        aiosqlite each statement and the commit are trips through the event loop, and SQLite's
        single write lock stays taken across them: under 1,000 chat messages/s the chat's
        batches found the lock taken about four times per commit and waited behind it.
        Elsewhere it runs in a transaction through `run_sync`.
        """
        if self._sqlite_threads is not None:
            return await self._sqlite_threads.write(scope, work)
        async with self.transaction(scope) as session:
            return await session.run_sync(work)

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
        if self._checkpointer is not None:
            await self._checkpointer.stop()
        await self.batch_committer.close()
        if self._sqlite_threads is not None:
            self._sqlite_threads.close()
        await self.engine.dispose()


def _create_engine(settings: DatabaseSettings, url: URL) -> AsyncEngine:
    # orjson for JSON columns (outbox payloads): several times faster than json.dumps.
    options: dict[str, Any] = {
        "echo": settings.echo,
        # An error's message would otherwise carry every bound value (password hashes, emails,
        # message bodies) into the log; the log formatters withhold the driver's message too.
        "hide_parameters": True,
        "json_serializer": _json_dumps,
        "json_deserializer": orjson.loads,
    }
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    else:
        # No pool_pre_ping: it costs a round trip (BEGIN; SELECT 1; ROLLBACK on asyncpg) per
        # checkout, i.e. per request. Instead connections are recycled before servers and proxies
        # time them out, a connection that fails with a disconnect error is invalidated by
        # SQLAlchemy (with every other connection of the pool checked out before the failure,
        # so a database restart costs at most one failed use per pooled connection), and hot
        # reads retry once (`Database.read`).
        options.update(pool_size=settings.pool_size, pool_recycle=settings.pool_recycle_seconds)
    engine = create_async_engine(url, **options)
    if url.get_backend_name() == "sqlite":
        checkpointed = _sqlite_file(url) is not None
        event.listen(
            engine.sync_engine, "connect", partial(_sqlite_pragmas, checkpointed=checkpointed)
        )
    return engine


def _sqlite_file(url: URL) -> str | None:
    """The path of a SQLite file database; None for other databases, `:memory:` and URIs,
    whose connections cannot simply be opened again from another thread."""
    path = url.database
    if url.get_backend_name() != "sqlite" or not path or path == ":memory:":
        return None
    return None if path.startswith("file:") else path


class _SqliteThreads:
    """A sync engine over the same SQLite file and the threads its reads and short writes
    run on."""

    THREADS = 4

    def __init__(
        self,
        url: URL,
        settings: DatabaseSettings,
        metrics: DbMetrics,
        writes: ThreadPoolExecutor,
    ) -> None:
        self.engine = create_engine(
            url.set(drivername="sqlite+pysqlite"),
            echo=settings.echo,
            hide_parameters=True,
            pool_size=self.THREADS + 1,
            json_serializer=_json_dumps,
            json_deserializer=orjson.loads,
        )
        event.listen(self.engine, "connect", partial(_sqlite_pragmas, checkpointed=True))
        metrics.attach(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._executor = ThreadPoolExecutor(self.THREADS, thread_name_prefix="sqlite-read")
        self._writes = writes

    async def run(self, scope: Scope, work: Callable[[Session], T]) -> T:
        return await self._in_session(self._executor, scope, work, transaction=False)

    async def write(self, scope: Scope, work: Callable[[Session], T]) -> T:
        return await self._in_session(self._writes, scope, work, transaction=True)

    async def _in_session(
        self,
        executor: ThreadPoolExecutor,
        scope: Scope,
        work: Callable[[Session], T],
        *,
        transaction: bool,
    ) -> T:
        def call() -> T:
            with self._sessions() as session:
                session.info[_SCOPE_KEY] = scope
                if not transaction:
                    return work(session)
                with session.begin():
                    return work(session)

        # The caller's context (its db_purpose) goes along to the thread.
        context = contextvars.copy_context()
        return await asyncio.get_running_loop().run_in_executor(executor, context.run, call)

    def close(self) -> None:
        # Called at shutdown, when no read is in flight: nothing to wait for. The writer
        # thread is the batch committer's, closed with it.
        self._executor.shutdown(wait=False)
        self.engine.dispose()


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any = None, *, checkpointed: bool) -> None:
    # WAL lets readers run beside the writer; busy_timeout queues writers instead of failing.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
    if checkpointed:
        leave_checkpoints_alone(dbapi_connection)


def session_scope(session: Session) -> Scope:
    scope = session.info.get(_SCOPE_KEY)
    if not isinstance(scope, Scope):
        raise ScopeViolation("session has no scope: open it with Database.session(scope)")
    return scope


TENANT_PARAM = "mitra_scope_tenant_id"
"""The bound parameter the tenant criteria compares `tenant_id` with; the hook supplies it."""

_TENANT: BindParameter[Any] = bindparam(TENANT_PARAM)
TENANT_SCOPE: ORMOption = with_loader_criteria(
    TenantOwned,
    lambda cls: cls.tenant_id == _TENANT,
    include_aliases=True,
    # The lambda has no varying closure: the tenant comes as the bound parameter's value.
    track_closure_variables=False,
)
"""`tenant_id = :mitra_scope_tenant_id` on every tenant-owned entity of a statement.

One option for every tenant and every query: the tenant is a bound parameter that
`_scope_queries` adds to each execution, so nothing is built per query (building a
`with_loader_criteria` per query cost about a tenth of a REST read) and one compiled form
serves every tenant.
"""


def tenant_scoped(statement: _S) -> _S:
    """Attach the tenant scope ahead of time to a statement that is built once and reused.

    Only a saving: the session's hook attaches it to every statement that lacks it and always
    supplies the tenant. A statement carrying it can only run in a tenant's session (a system
    session has no tenant to give it, and the execution fails rather than read every tenant).
    """
    return statement.options(TENANT_SCOPE)


def _with_tenant(parameters: Any, tenant_id: uuid.UUID) -> Any:
    if not parameters:
        return {TENANT_PARAM: tenant_id}
    if isinstance(parameters, list):  # executemany: every parameter set gets it
        return [{**entry, TENANT_PARAM: tenant_id} for entry in parameters]
    return {**parameters, TENANT_PARAM: tenant_id}


@event.listens_for(Session, "do_orm_execute")
def _scope_queries(state: ORMExecuteState) -> None:
    scope = session_scope(state.session)
    if scope.tenant_id is None or not (state.is_select or state.is_update or state.is_delete):
        return
    statement = state.statement
    if TENANT_SCOPE not in statement._with_options:
        state.statement = statement.options(TENANT_SCOPE)
    state.parameters = _with_tenant(state.parameters, scope.tenant_id)


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
