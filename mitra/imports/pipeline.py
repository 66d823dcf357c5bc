"""The stages of one import, run on the import actor's thread: parse, map the header,
validate, write in batches, report.

The parse streams (one row at a time through pyexcel) and the database work goes to the event
loop through `run` (the actor's `run_on_loop`), one batch per transaction. Two passes over the
file: the first counts the rows (so progress has a total), the second validates and writes;
neither holds the sheet in memory. A crash resumes in the second pass after `committed_row`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.exc import SQLAlchemyError

from mitra.db import utcnow
from mitra.imports.columns import HEADER_SEARCH_ROWS, HeaderMap, find_header
from mitra.imports.reader import UnreadableFile, open_rows, sheet_size
from mitra.imports.rows import CleanRow, RowError, RowValidator, SourceRow, source_row
from mitra.imports.store import JobStore
from mitra.imports.writer import Batch, Counts, ImportWriter, JobRef, LeaseLost
from mitra.models import ImportJob, ImportType
from mitra.settings import ImportsSettings

log = logging.getLogger("mitra.imports")
T = TypeVar("T")

RunOnLoop = Callable[[Coroutine[Any, Any, Any]], Any]
Submit = Callable[[Coroutine[Any, Any, Any]], "concurrent.futures.Future[Any]"]
"""Start a coroutine on the loop without waiting (`asyncio.run_coroutine_threadsafe`)."""
_WRITE_TIMEOUT = 120.0
_FIRST_ANALYZE = 2000
"""Rows created before the tables' statistics are first refreshed; then at 4x each time."""
Progress = Callable[[uuid.UUID, list[uuid.UUID], dict[str, Any]], None]
"""Push a frame to users' sockets (tenant, user ids, frame); best-effort, must not raise."""


class Stopped(Exception):
    """The instance is shutting down: the import is left for a restart or another instance."""


@dataclass
class _Tally:
    total: int | None
    counts: Counts
    started: float
    status: str


class Pipeline:
    def __init__(
        self,
        tenant_id: uuid.UUID,
        import_id: uuid.UUID,
        *,
        store: JobStore,
        writer: ImportWriter,
        settings: ImportsSettings,
        owner: str,
        run: RunOnLoop,
        progress: Progress | None = None,
        stopping: threading.Event | None = None,
        submit: Submit | None = None,
    ) -> None:
        self.tenant_id = tenant_id
        self.import_id = import_id
        self._store = store
        self._writer = writer
        self._settings = settings
        self._owner = owner
        self._run = run
        self._progress = progress
        self._stopping = stopping or threading.Event()
        self._submit = submit
        self._pending: tuple[JobRef, Batch, concurrent.futures.Future[Counts]] | None = None
        self._last_frame = 0.0
        self._last_lease = 0.0
        # The latest snapshot and the rows it counts as done in this run: the ticker on the
        # loop pushes it again whenever the pipeline has said nothing for an interval (a slow
        # batch, an ANALYZE, the whole load of an xls), without asking the database.
        self._latest: tuple[dict[str, Any], int] | None = None
        self._frames_lock = threading.Lock()
        self._frames_closed = False
        self._ticker: concurrent.futures.Future[None] | None = None
        self._written_here = 0
        # Rows processed by this run (a resumed or retried import counted the rest before).
        self._done_here = 0
        self._analyze_at = _FIRST_ANALYZE
        self._job: ImportJob | None = None
        self._tally: _Tally | None = None

    # ---- the whole run -------------------------------------------------------------------

    def run(self) -> None:
        job = self._run(self._store.load(self.tenant_id, self.import_id))
        if job is None or not _running(job.status):
            return
        lease = self._settings.lease_seconds
        if not self._run(self._store.claim(self.tenant_id, self.import_id, self._owner, lease)):
            return
        self._job = job
        self._tally = _Tally(
            job.total,
            Counts(job.created, job.updated, job.unchanged, job.failed),
            time.monotonic(),
            job.status,
        )
        ref = JobRef(
            job.id, job.tenant_id, job.agent_id, job.uploaded_by, ImportType(job.import_type)
        )
        self._frame(self._snapshot(), force=True)
        self._start_ticker()
        try:
            self._stages(job, ref)
        finally:
            if self._ticker is not None:
                self._ticker.cancel()

    def _stages(self, job: ImportJob, ref: JobRef) -> None:
        try:
            if job.retries and job.committed_row >= 0 and job.header:
                self._retry(job, ref)
            else:
                self._import(job, ref)
        except Stopped:
            # Hand it on at once rather than when the lease runs out.
            self._run(self._store.renew(self.tenant_id, self.import_id, self._owner, 0.0))
            return
        except LeaseLost:
            self._end(None)
            return
        except UnreadableFile as exc:
            self._drain_quietly()
            self._end(str(exc))
            return
        except Exception:
            log.exception("import %s stopped on an internal error", self.import_id)
            self._drain_quietly()
            self._end("the import stopped on an internal error")
            return
        self._end(None)

    def _end(self, error: str | None) -> None:
        finished = self._run(
            self._store.finish(self.tenant_id, self.import_id, self._owner, error=error)
        )
        job = finished or self._run(self._store.load(self.tenant_id, self.import_id))
        if job is not None and not _running(job.status):
            self._path(job).unlink(missing_ok=True)
            self._send(_frame_of(job), final=True)

    def _path(self, job: ImportJob) -> Path:
        return Path(self._settings.directory) / job.stored_name

    # ---- a first import ------------------------------------------------------------------

    def _import(self, job: ImportJob, ref: JobRef) -> None:
        path = self._path(job)
        import_type = ImportType(job.import_type)
        # A workbook says how many rows it has: its rows are then read once, not twice (the
        # parse of an xlsx is the pipeline's slowest part). Blank rows make that an estimate
        # until the end, when the total is the rows processed.
        sized = job.total is None and job.file_format == "xlsx"
        size = sheet_size(path, job.sheet) if sized else None
        if job.total is None and size is None:
            self._set_status("parsing")
            with open_rows(path, job.file_format, job.sheet) as rows:
                header, first = self._header(rows, import_type)
                total = 0
                for number, raw in _numbered(first, rows):
                    if number > header.row_index + 1 and source_row(number, raw) is not None:
                        total += 1
                    if number % 2000 == 0:
                        self._heartbeat()
            assert self._tally is not None
            self._tally.total = total
            self._lease(
                status="validating",
                total=total,
                header=header.header,
                unknown_columns=header.unknown,
            )
            self._tally.status = "validating"
            self._frame(self._snapshot(), force=True)
        self._write_file(job, ref, path, import_type, size)

    def _header(
        self, rows: Iterator[list[Any]], import_type: ImportType
    ) -> tuple[HeaderMap, list[list[Any]]]:
        """The header among the first rows; `rows` goes on after the ones read here."""
        first: list[list[Any]] = []
        for raw in rows:
            first.append(raw)
            if len(first) >= HEADER_SEARCH_ROWS:
                break
        header = find_header(first, import_type)
        if header is None:
            raise UnreadableFile(
                "no header row found: the first rows name none of the expected columns "
                "(see GET /api/v1/imports/template)"
            )
        if header.missing:
            raise UnreadableFile("missing required columns: " + ", ".join(header.missing))
        return header, first

    def _write_file(
        self, job: ImportJob, ref: JobRef, path: Path, kind: ImportType, size: int | None
    ) -> None:
        committed = job.committed_row
        with open_rows(path, job.file_format, job.sheet) as rows:
            header, first = self._header(rows, kind)
            if size is not None:
                estimate = max(size - header.row_index - 1, 0)
                assert self._tally is not None
                self._tally.total = estimate
                self._tally.status = "validating"
                self._lease(
                    status="validating",
                    total=estimate,
                    header=header.header,
                    unknown_columns=header.unknown,
                )
            validator = RowValidator(kind, header)
            batch = Batch(last_row=committed)
            for number, raw in _numbered(first, rows):
                if number <= header.row_index + 1:
                    continue
                source = source_row(number, raw)
                if number <= committed:
                    if source is not None:
                        validator.remember(source)
                    continue
                batch.last_row = number
                if source is None:
                    continue
                self._add(batch, source, validator.validate(source))
                if batch.size >= self._settings.batch_size:
                    self._write(ref, batch)
                    batch = Batch(last_row=number)
                elif number % 2000 == 0:
                    self._heartbeat()
            if batch.size or batch.last_row > committed:
                self._write(ref, batch)
            self._drain()

    @staticmethod
    def _add(batch: Batch, source: SourceRow, result: CleanRow | list[RowError]) -> None:
        if isinstance(result, CleanRow):
            batch.rows.append(result)
        else:
            batch.errors.extend(result)
        batch.sources[source.row_number] = source

    # ---- a retry of the failed rows ------------------------------------------------------

    def _retry(self, job: ImportJob, ref: JobRef) -> None:
        kind = ImportType(job.import_type)
        header = find_header([list(job.header or [])], kind)
        if header is None or header.missing:
            raise UnreadableFile("the import's header can no longer be read")
        validator = RowValidator(kind, header)
        after = job.committed_row
        while True:
            failed = self._run(
                self._store.failed_rows(
                    self.tenant_id, self.import_id, after, self._settings.batch_size
                )
            )
            if not failed:
                return
            batch = Batch()
            for number, cells in failed:
                source = SourceRow(number, [str(cell) for cell in cells])
                self._add(batch, source, validator.validate(source))
                batch.retried_rows.append(number)
                batch.last_row = number
            self._write(ref, batch)
            self._drain()
            after = batch.last_row

    # ---- writing, with retries, then row by row ------------------------------------------

    def _write(self, ref: JobRef, batch: Batch) -> None:
        """Hand `batch` to the loop and go on validating the next one while it is written.

        One batch in flight at most: the next is submitted only once this one committed,
        because its rows are matched against what this one wrote (the same customer twice).
        """
        self._drain()
        if self._stopping.is_set():
            raise Stopped
        if self._submit is None:
            self._settle(ref, batch, None)
            return
        self._pending = (
            ref,
            batch,
            self._submit(self._writer.write(ref, batch, **self._lease_args())),
        )

    def _drain(self) -> None:
        """Wait for the batch in flight, if any, and account for it."""
        pending, self._pending = self._pending, None
        if pending is not None:
            self._settle(*pending)

    def _drain_quietly(self) -> None:
        """Let a batch in flight finish before the import ends, whatever it comes to."""
        try:
            self._drain()
        except Exception:
            log.warning("import %s: the last batch did not commit", self.import_id)

    def _settle(
        self, ref: JobRef, batch: Batch, future: concurrent.futures.Future[Counts] | None
    ) -> None:
        attempts = self._settings.batch_attempts
        for attempt in range(1, attempts + 1):
            try:
                if future is not None:
                    counts = future.result(_WRITE_TIMEOUT)
                    future = None
                else:
                    counts = self._run(self._writer.write(ref, batch, **self._lease_args()))
                self._written(counts, retried=len(set(batch.retried_rows)))
                return
            except SQLAlchemyError:
                future = None
                log.warning(
                    "import %s: batch up to row %d refused (attempt %d of %d)",
                    self.import_id,
                    batch.last_row,
                    attempt,
                    attempts,
                    exc_info=True,
                )
                if attempt < attempts:
                    time.sleep(min(0.2 * 2**attempt, 2.0))
        self._write_one_by_one(ref, batch)

    def _write_one_by_one(self, ref: JobRef, batch: Batch) -> None:
        """Each row in its own transaction: only the rows the database refuses fail."""
        errors_by_row: dict[int, list[RowError]] = {}
        for error in batch.errors:
            errors_by_row.setdefault(error.row_number, []).append(error)
        clean = {row.row_number: row for row in batch.rows}
        retried = set(batch.retried_rows)
        for number in sorted({*errors_by_row, *clean}):
            single = Batch(
                sources={number: batch.sources[number]} if number in batch.sources else {},
                last_row=number,
                retried_rows=[number] if number in retried else [],
            )
            if number in clean:
                single.rows.append(clean[number])
                try:
                    written = self._run(self._writer.write(ref, single, **self._lease_args()))
                    self._written(written, retried=len(single.retried_rows))
                    continue
                except SQLAlchemyError:
                    log.warning("import %s: row %d refused", self.import_id, number)
                single.rows.clear()
                single.errors.append(RowError(number, None, None, "the database refused this row"))
            else:
                single.errors.extend(errors_by_row[number])
            written = self._run(self._writer.write(ref, single, **self._lease_args()))
            self._written(written, retried=len(single.retried_rows))
        if batch.last_row > max([*errors_by_row, *clean], default=0):
            self._written(
                self._run(
                    self._writer.write(ref, Batch(last_row=batch.last_row), **self._lease_args())
                )
            )

    def _lease_args(self) -> dict[str, Any]:
        return {"owner": self._owner, "lease_seconds": self._settings.lease_seconds}

    def _written(self, counts: Counts, *, retried: int = 0) -> None:
        tally = self._tally
        assert tally is not None
        for name in ("created", "updated", "unchanged", "failed"):
            setattr(tally.counts, name, getattr(tally.counts, name) + getattr(counts, name))
        # A retried row was counted failed before: it moves, as the writer's counts do.
        tally.counts.failed -= retried
        self._done_here += counts.processed
        tally.status = "writing"
        self._written_here += counts.created
        if self._written_here >= self._analyze_at:
            self._analyze_at *= 4
            self._run(self._store.analyze())
        self._frame(self._snapshot())

    # ---- lease, status and progress ------------------------------------------------------

    def _set_status(self, status: str) -> None:
        self._lease(status=status)
        assert self._tally is not None
        self._tally.status = status
        self._frame(self._snapshot())

    def _lease(self, **values: Any) -> None:
        job = self._job
        assert job is not None
        if job.started_at is None and "started_at" not in values:
            values["started_at"] = utcnow()
            job.started_at = values["started_at"]
        renewed = self._run(
            self._store.renew(
                self.tenant_id, self.import_id, self._owner, self._settings.lease_seconds, **values
            )
        )
        if not renewed:
            raise LeaseLost(str(self.import_id))
        self._last_lease = time.monotonic()

    def _heartbeat(self) -> None:
        if self._stopping.is_set():
            raise Stopped
        if time.monotonic() - self._last_lease >= self._settings.progress_interval_seconds:
            self._lease()
            self._frame(self._snapshot())

    def _snapshot(self) -> dict[str, Any]:
        tally = self._tally
        assert tally is not None
        assert self._job is not None
        counts = tally.counts
        done = self._done_here
        return {
            "type": "import_progress",
            "import_id": str(self.import_id),
            "status": tally.status,
            "total": tally.total,
            "processed": counts.processed,
            "created": counts.created,
            "updated": counts.updated,
            "unchanged": counts.unchanged,
            "failed": counts.failed,
            "rows_per_second": self._rate(done),
            "finished": False,
        }

    def _rate(self, done: int) -> float:
        assert self._tally is not None
        return round(done / max(time.monotonic() - self._tally.started, 1e-6), 1)

    def _frame(self, frame: dict[str, Any], *, force: bool = False) -> None:
        """A new snapshot: kept for the ticker, and sent unless one went out less than an
        interval ago (`force`: sent anyway)."""
        if self._progress is None or self._job is None:
            return
        self._latest = (frame, self._done_here)
        self._send(frame, force=force)

    def _send(self, frame: dict[str, Any], *, force: bool = False, final: bool = False) -> None:
        """`final` is the last frame: nothing is sent after it, not even by the ticker."""
        if self._progress is None or self._job is None:
            return
        with self._frames_lock:
            now = time.monotonic()
            if self._frames_closed:
                return
            if not (force or final) and now - self._last_frame < self._interval:
                return
            self._frames_closed = final
            self._last_frame = now
            users = list(dict.fromkeys([self._job.uploaded_by, self._job.agent_id]))
            try:
                # Under the lock, so that a frame of the ticker never follows the final one.
                self._progress(self.tenant_id, users, frame)
            except Exception:
                log.warning(
                    "import %s: a progress frame was not sent", self.import_id, exc_info=True
                )

    @property
    def _interval(self) -> float:
        return self._settings.progress_interval_seconds

    def _start_ticker(self) -> None:
        if self._progress is None or self._submit is None:
            return
        try:
            self._ticker = self._submit(self._tick())
        except Exception:
            log.warning("import %s: no progress ticker", self.import_id, exc_info=True)

    async def _tick(self) -> None:
        """On the loop: the latest snapshot again whenever no frame went out for an interval,
        its rate brought up to date (a stall shows as a falling rate)."""
        while not self._frames_closed:
            wait = self._last_frame + self._interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            latest = self._latest
            if latest is None:
                await asyncio.sleep(self._interval)
                continue
            frame, done = latest
            self._send({**frame, "rows_per_second": self._rate(done)}, force=True)


def _numbered(first: list[list[Any]], rest: Iterator[list[Any]]) -> Iterator[tuple[int, list[Any]]]:
    """Every row with its 1-based number in the sheet: the ones read to find the header, then
    the rest of the stream."""
    yield from enumerate(first, start=1)
    yield from enumerate(rest, start=len(first) + 1)


def _running(status: str) -> bool:
    return status in ("queued", "parsing", "validating", "writing")


def _frame_of(job: ImportJob) -> dict[str, Any]:
    return {"type": "import_progress", **progress_of(job), "finished": True}


def progress_of(job: ImportJob) -> dict[str, Any]:
    """What GET /imports/{id} and the frames say about an import."""
    rate = None
    if job.started_at is not None:
        end = job.finished_at or utcnow()
        # A retry's wait for the agent's fix is not time the import took.
        seconds = (end - job.started_at).total_seconds() - (job.idle_seconds or 0.0)
        rate = round(job.processed / seconds, 1) if seconds > 0 else None
    return {
        "import_id": str(job.id),
        "status": job.status,
        "total": job.total,
        "processed": job.processed,
        "created": job.created,
        "updated": job.updated,
        "unchanged": job.unchanged,
        "failed": job.failed,
        "rows_per_second": rate,
    }
