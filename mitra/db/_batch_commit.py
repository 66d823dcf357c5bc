"""One transaction of bulk inserts, committed in as few trips to the driver as it allows.

Through aiosqlite every step of a transaction is a round trip to the driver's thread: the
cursor, each statement, the commit, the pool's rollback on return. Each answer then waits for
its turn on the event loop, and on a loop busy with thousands of sockets that turn comes late:
the chat writer's three-statement transaction took 70-140 ms under load against ~10 ms alone.
On a SQLite file the whole transaction therefore runs on one thread of its own, with its own
connection: one trip per batch. Elsewhere (PostgreSQL through asyncpg, which has no thread) it
runs in an ordinary session.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

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


Transaction = Callable[[], AbstractAsyncContextManager[AsyncSession]]


class SessionCommitter(BatchCommitter):
    """The transaction in an ordinary session of the database's pool."""

    def __init__(self, transaction: Transaction) -> None:
        self._transaction = transaction

    async def commit(self, inserts: Inserts) -> None:
        async with self._transaction() as session:
            for insert, rows in inserts:
                await insert.execute(session, rows)

    async def close(self) -> None:
        pass  # the pool is the database's


class SqliteThreadCommitter(BatchCommitter):
    """The transaction on a dedicated thread with its own connection to the SQLite file.

    SQLite lets one writer in at a time anyway. The thread (`thread`) is also where
    `Database.write_sync` runs its short writes, so those take turns with the batches instead
    of contending for the lock. While another connection (a REST write through aiosqlite)
    holds the write lock, this one waits on its own
    thread, never on the loop, and it polls for the lock every `LOCK_POLL_SECONDS` instead of
    through SQLite's busy timeout: the default busy handler sleeps 1, 2, 5, 10, 15, 20, 25 ms
    ... between tries, so a lock held 12 ms cost the chat 18 ms, and one held 40 ms cost it
    53 (a probe of the committer under 1,000 msg/s: p50 15-26 ms per commit against well
    under 1 ms of work).
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
