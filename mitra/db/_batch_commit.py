"""One transaction of bulk inserts, committed in as few trips to the driver as it allows.

Through aiosqlite every step of a transaction is a round trip to the driver's thread: the
cursor, each statement, the commit, the pool's rollback on return. Each answer then waits for
its turn on the event loop, and on a loop busy with thousands of sockets that turn comes late:
the chat writer's three-statement transaction took 70-140 ms under load against ~10 ms alone.
On a SQLite file the whole transaction therefore runs on one thread of its own, with its own
connection: one trip per batch. On PostgreSQL (asyncpg has no thread) the batch is one
statement in autocommit: one round trip.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from mitra.db._bulk import BulkInsert
from mitra.db._metrics import DbMetrics

# SQLite's limit on a statement's bound values: 32,766 since 3.32, 999 before.
_MAX_PARAMETERS = 30_000 if sqlite3.sqlite_version_info >= (3, 32) else 999

Inserts = Sequence[tuple[BulkInsert, Sequence[Sequence[Any]]]]
"""Each statement with its rows, executed in this order in one transaction."""


class BatchCommitter(ABC):
    @abstractmethod
    async def commit(self, inserts: Inserts) -> None:
        """Run `inserts` in one transaction and commit it; on any error nothing is stored.

        Errors are SQLAlchemy's (`IntegrityError`, `StatementError`, ...), whichever path ran.
        """

    @abstractmethod
    async def close(self) -> None:
        """Release what the committer holds."""


class UnnestCommitter(BatchCommitter):
    """PostgreSQL: the batch as one statement in autocommit, one round trip to the server.

    Each table's rows go as one array per column (`INSERT ... SELECT * FROM unnest(...)`), each
    insert a data-modifying CTE of one `WITH ... SELECT 1`: a single statement is atomic, so
    all of it is stored or none. In a transaction the same batch took four round trips (BEGIN,
    an INSERT per table, COMMIT), each answer waiting for its turn on a busy event loop. The
    CTEs run in no set order: the tables of one batch must not reference each other.
    """

    def __init__(self, engine: AsyncEngine, metrics: DbMetrics) -> None:
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._metrics = metrics

    async def commit(self, inserts: Inserts) -> None:
        dialect = self._engine.dialect
        parts: list[str] = []
        values: list[list[Any]] = []
        for insert, rows in inserts:
            if rows:
                sql, columns = insert.prepare_unnest(dialect, rows, len(values) + 1)
                parts.append(f"w{len(parts)} AS ({sql})")
                values.extend(columns)
        if not parts:
            return
        async with self._engine.connect() as connection:
            await connection.exec_driver_sql(f"WITH {', '.join(parts)} SELECT 1", tuple(values))
        # The statement is counted by the engine's hook; its implicit commit is not.
        self._metrics.count(statements=0, commits=1)

    async def close(self) -> None:
        pass  # the pool is the engine's


class SqliteThreadCommitter(BatchCommitter):
    """The transaction on a dedicated thread with its own connection to the SQLite file.

    SQLite lets one writer in at a time anyway. The thread (`thread`) is also where
    `Database.write_sync` runs its short writes, so those take turns with the batches instead
    of contending for the lock. While another connection (a REST write through aiosqlite)
    holds the write lock, this one waits on its own thread, never on the loop, polling for the
    lock every `LOCK_POLL_SECONDS` rather than through SQLite's busy timeout: the default busy
    handler sleeps 1, 2, 5, 10, 15, 20, 25 ms ... between tries, so a lock held 12 ms cost the
    chat 18 ms, and one held 40 ms cost it 53.
    """

    LOCK_POLL_SECONDS = 0.0005

    def __init__(
        self,
        path: str,
        dialect: Dialect,
        metrics: DbMetrics,
        configure: Callable[[sqlite3.Connection], None],
    ) -> None:
        self._path = path
        self._dialect = dialect
        self._metrics = metrics
        self._configure = configure
        # One worker: the connection is only ever touched from its thread.
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-write")
        self._connection: sqlite3.Connection | None = None
        self._closed = False
        self.lock_timeout = 5.0

    async def commit(self, inserts: Inserts) -> None:
        statements = sum(1 for _, rows in inserts if rows)
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self.thread, self._commit, inserts)
        finally:
            self._metrics.count(statements=statements, commits=1)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self.thread, self._disconnect)
        self.thread.shutdown(wait=False)

    # ---- on the committer's thread -----------------------------------------------------------

    def _commit(self, inserts: Inserts) -> None:
        deadline = time.monotonic() + self.lock_timeout
        while True:
            try:
                self._commit_once(inserts)
                return
            except DBAPIError as exc:
                if not _locked(exc) or time.monotonic() >= deadline:
                    raise
            # Nothing was written: the lock is taken by the first statement, or not at all.
            time.sleep(self.LOCK_POLL_SECONDS)

    def _commit_once(self, inserts: Inserts) -> None:
        sql = ""
        try:
            connection = self._connect()
        except sqlite3.Error as exc:
            raise DBAPIError.instance(sql, None, exc, sqlite3.Error) from exc
        try:
            for insert, rows in inserts:
                if rows:
                    for sql, values in insert.prepare_multirow(
                        self._dialect, rows, _MAX_PARAMETERS
                    ):
                        connection.execute(sql, values)
            connection.commit()
        except sqlite3.Error as exc:
            connection.rollback()
            # Parameters stay out of the error: they are people's messages.
            raise DBAPIError.instance(sql, None, exc, sqlite3.Error) from exc
        except BaseException:
            connection.rollback()
            raise

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            connection = sqlite3.connect(self._path)
            self._configure(connection)
            # Waits for the write lock are `_commit`'s, at a finer grain than SQLite's.
            connection.execute("PRAGMA busy_timeout=0")
            self._connection = connection
        return self._connection

    def _disconnect(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _locked(exc: DBAPIError) -> bool:
    """SQLITE_BUSY: another connection holds the write lock."""
    orig = exc.orig
    code = getattr(orig, "sqlite_errorcode", None)
    # The primary code is the low byte (SQLITE_BUSY_SNAPSHOT and kin carry it too).
    return isinstance(code, int) and code & 0xFF == sqlite3.SQLITE_BUSY
