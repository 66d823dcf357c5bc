"""The writing stage as it receives batches (from `imports.rows`, on whichever instance consumes
the import's partition): decode, write with retries, and when the database keeps refusing the
batch, row by row, so that only the rows it refuses fail and none is half-written.

A batch the import's row does not expect (delivered twice, sent by an owner that lost the
lease, sent after a gap, or for a cancelled import) writes nothing: the writer's guard refuses
it. One case is taken up rather than refused: a batch whose rows were partly written one by one
before a crash goes on after the last row written.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy.exc import SQLAlchemyError

from mitra.imports import wire
from mitra.imports.rows import RowError
from mitra.imports.store import JobStore
from mitra.imports.writer import Batch, Counts, ImportWriter, JobRef, LeaseLost
from mitra.settings import ImportsSettings

log = logging.getLogger("mitra.imports")


@dataclass(frozen=True)
class Written:
    """What one received batch came to: the import, and its counts (None: refused)."""

    job: JobRef
    counts: Counts | None


class BatchWriting:
    def __init__(self, writer: ImportWriter, store: JobStore, settings: ImportsSettings) -> None:
        self._writer = writer
        self._store = store
        self._settings = settings

    async def receive(self, payload: dict[str, Any]) -> Written:
        """Write one `imports.rows` payload (its JSON data); raises ValueError for a payload
        that is not one."""
        try:
            job, batch, owner = wire.decode(payload)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not an imports.rows payload: {exc!r}") from exc
        return Written(job, await self.write(job, batch, owner))

    async def write(self, job: JobRef, batch: Batch, owner: str) -> Counts | None:
        try:
            return await self._settle(job, batch, owner)
        except LeaseLost:
            pass
        rest = await self._unfinished(job, batch, owner)
        if rest is None:
            log.debug(
                "import %s: batch %d..%d of %s refused",
                job.import_id,
                batch.after_row,
                batch.last_row,
                owner,
            )
            return None
        try:
            return await self._settle(job, rest, owner)
        except LeaseLost:
            return None

    async def _unfinished(self, job: JobRef, batch: Batch, owner: str) -> Batch | None:
        """The rows of `batch` not yet written, when a crash stopped it part-way (row by row);
        None when the import does not expect this batch at all."""
        state = await self._store.position(job.tenant_id, job.import_id)
        if state is None or not state.expects(owner, job.retries):
            return None
        if batch.after_row < state.committed_row < batch.last_row:
            return batch.after(state.committed_row)
        return None

    async def _settle(self, job: JobRef, batch: Batch, owner: str) -> Counts:
        attempts = self._settings.batch_attempts
        for attempt in range(1, attempts + 1):
            try:
                return await self._write(job, batch, owner)
            except SQLAlchemyError:
                log.warning(
                    "import %s: batch up to row %d refused (attempt %d of %d)",
                    job.import_id,
                    batch.last_row,
                    attempt,
                    attempts,
                    exc_info=True,
                )
                if attempt < attempts:
                    await asyncio.sleep(min(0.2 * 2**attempt, 2.0))
        return await self._one_by_one(job, batch, owner)

    async def _one_by_one(self, job: JobRef, batch: Batch, owner: str) -> Counts:
        """Each row in its own transaction: only the rows the database refuses fail."""
        errors_by_row: dict[int, list[RowError]] = {}
        for error in batch.errors:
            errors_by_row.setdefault(error.row_number, []).append(error)
        clean = {row.row_number: row for row in batch.rows}
        retried = set(batch.retried_rows)
        total = Counts()
        after = batch.after_row
        for number in sorted({*errors_by_row, *clean}):
            single = Batch(
                sources={number: batch.sources[number]} if number in batch.sources else {},
                last_row=number,
                retried_rows=[number] if number in retried else [],
                after_row=after,
            )
            written: Counts | None = None
            if number in clean:
                single.rows.append(clean[number])
                try:
                    written = await self._write(job, single, owner)
                except SQLAlchemyError:
                    log.warning("import %s: row %d refused", job.import_id, number)
                    single.rows.clear()
                    single.errors.append(
                        RowError(number, None, None, "the database refused this row")
                    )
            else:
                single.errors.extend(errors_by_row[number])
            if written is None:
                written = await self._write(job, single, owner)
            _add(total, written)
            after = number
        if batch.last_row > after:
            _add(
                total,
                await self._write(job, Batch(last_row=batch.last_row, after_row=after), owner),
            )
        return total

    async def _write(self, job: JobRef, batch: Batch, owner: str) -> Counts:
        return await self._writer.write(
            job, batch, owner=owner, lease_seconds=self._settings.lease_seconds
        )


def _add(total: Counts, counts: Counts) -> None:
    for name in ("created", "updated", "unchanged", "failed"):
        setattr(total, name, getattr(total, name) + getattr(counts, name))


class LocalHandoff:
    """Batches written on this process's loop, in order, without streams (`mitra import` from
    the command line, where no writer consumer runs)."""

    def __init__(self, writing: BatchWriting, loop: asyncio.AbstractEventLoop) -> None:
        self._writing = writing
        self._loop = loop
        self._lock = asyncio.Lock()
        self._written = threading.Event()

    def send(self, key: str, payloads: list[bytes]) -> None:
        for data in payloads:
            # Started in order; the lock (first come, first served) keeps them in order.
            self._submit(self._receive(orjson.loads(data)))

    def _submit(self, coro: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop)

    async def _receive(self, payload: dict[str, Any]) -> None:
        async with self._lock:
            try:
                await self._writing.receive(payload)
            except Exception:
                # As a consumer's dead letter: the pipeline sends the batch again.
                log.exception("import batch not written")
            finally:
                self._written.set()

    def wait(self, timeout: float) -> None:
        self._written.wait(timeout)
        self._written.clear()
