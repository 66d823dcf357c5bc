"""SQLite WAL checkpoints on a thread of their own, never inside a writer's commit.

By default the connection whose commit takes the WAL past 1,000 pages copies them into the
database file and syncs it before its commit returns. That connection is nearly always the chat
writer's, so every few seconds at 1,000 messages/s one chat batch (and the acks of every message
queued behind it) waited 7-20 ms for a checkpoint on this machine's disk, and far longer when
the disk was busy. Here every connection of the process leaves checkpoints alone
(`wal_autocheckpoint=0`) and this thread runs a PASSIVE checkpoint every `interval` seconds: it
copies what no reader still needs and never blocks a writer.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading

log = logging.getLogger("mitra.db")

# Truncate the WAL back to this size after it was reset, so a burst does not keep its disk.
JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024


def leave_checkpoints_alone(dbapi_connection: sqlite3.Connection, _record: object = None) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT}")
    cursor.close()


class Checkpointer:
    def __init__(self, path: str, interval: float = 1.0) -> None:
        self._path = path
        self._interval = interval
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        connection: sqlite3.Connection | None = None
        try:
            while not self._stopped.wait(self._interval):
                try:
                    if connection is None:
                        connection = sqlite3.connect(self._path)
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error:
                    # The next round tries again; writers are not held up meanwhile, the WAL
                    # just grows until then.
                    log.warning("SQLite checkpoint failed", exc_info=True)
                    if connection is not None:
                        connection.close()
                        connection = None
        finally:
            if connection is not None:
                connection.close()

    async def stop(self) -> None:
        self._stopped.set()
        # Joined off the loop: a checkpoint in progress finishes first.
        await asyncio.to_thread(self._thread.join, 5.0)
