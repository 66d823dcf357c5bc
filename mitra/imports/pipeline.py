"""One import from the import actor's thread: its status, lease and progress, and the
batches of its worker (`produce`: parse, map the header, validate, encode) handed on to the
writing stage.

Each batch is handed on (`Handoff`: an `imports.rows` event, written by whichever instance's
writer consumes the import's partition, see `writing`), and the pipeline learns what was
written from the import's row. Its own database work goes to the event loop through `run` (the
actor's `run_on_loop`). A crash resumes after `committed_row`. A retry of the failed rows reads
them from the database and validates them here: they are few.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from mitra.db import utcnow
from mitra.imports import wire
from mitra.imports.columns import find_header
from mitra.imports.produce import Work, Worker, WorkerDied, add
from mitra.imports.reader import UnreadableFile
from mitra.imports.rows import RowValidator, SourceRow
from mitra.imports.store import JobStore
from mitra.imports.writer import Batch, Counts, JobRef, LeaseLost
from mitra.models import ImportJob, ImportType
from mitra.settings import ImportsSettings

log = logging.getLogger("mitra.imports")
T = TypeVar("T")

RunOnLoop = Callable[[Coroutine[Any, Any, Any]], Any]
Submit = Callable[[Coroutine[Any, Any, Any]], "concurrent.futures.Future[Any]"]
"""Start a coroutine on the loop without waiting (`asyncio.run_coroutine_threadsafe`)."""
_WINDOW = 3
"""Batches handed on and not yet written, at most."""
_POLL_SECONDS = 0.5
"""How long the pipeline waits for word of a written batch before it reads the import's row."""
_RESEND_SECONDS = 30.0
"""Nothing written for this long while batches are out: they are sent again."""
_DRAIN_SECONDS = 30.0
"""How long an import that fails waits for the batches it sent before it ends."""
_BEAT_SECONDS = 0.5
"""How often the pipeline hears from a silent worker (a workbook loading whole)."""
_FIRST_ANALYZE = 2000
"""Rows created before the tables' statistics are first refreshed; then at 4x each time."""
Progress = Callable[[uuid.UUID, list[uuid.UUID], dict[str, Any]], None]
"""Push a frame to users' sockets (tenant, user ids, frame); best-effort, must not raise."""


class Handoff(Protocol):
    """How batches reach the writing stage, and word of them comes back."""

    def send(self, key: str, payloads: list[bytes]) -> None:
        """Hand on encoded batches (`wire`), in order; blocks the pipeline's thread until they
        are accepted; raises if they cannot be."""

    def wait(self, timeout: float) -> None:
        """Block until a batch of this import may have been written since the last wait."""


@dataclass(frozen=True)
class _Sent:
    last_row: int
    rows: int
    payloads: list[bytes]


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
        handoff: Handoff,
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
        self._handoff = handoff
        self._settings = settings
        self._owner = owner
        self._run = run
        self._progress = progress
        self._stopping = stopping or threading.Event()
        self._submit = submit
        self._outstanding: deque[_Sent] = deque()
        self._sent_row = 0
        self._acked_row = 0
        self._moved = 0.0
        self._retries = 0
        self._created_before = 0
        self._last_frame = 0.0
        self._last_lease = 0.0
        # The latest snapshot and the rows it counts as done in this run: the ticker on the
        # loop pushes it again whenever the pipeline has said nothing for an interval (a slow
        # batch, an ANALYZE, the whole load of an xls), without asking the database.
        self._latest: tuple[dict[str, Any], int] | None = None
        self._frames_lock = threading.Lock()
        self._frames_closed = False
        self._ticker: concurrent.futures.Future[None] | None = None
        # Rows processed by this run (a resumed or retried import counted the rest before).
        self._done_here = 0
        self._analyze_at = _FIRST_ANALYZE
        self._job: ImportJob | None = None
        self._tally: _Tally | None = None

    # ---- the whole run -------------------------------------------------------------------

    def run(self) -> None:
        lease = self._settings.lease_seconds
        if not self._run(self._store.claim(self.tenant_id, self.import_id, self._owner, lease)):
            return
        # Read once claimed: from now on no batch of an earlier owner moves `committed_row`.
        job = self._run(self._store.load(self.tenant_id, self.import_id))
        if job is None or not _running(job.status):
            return
        self._job = job
        self._retries = job.retries
        self._sent_row = self._acked_row = job.committed_row
        self._created_before = job.created
        self._tally = _Tally(
            job.total,
            Counts(job.created, job.updated, job.unchanged, job.failed),
            time.monotonic(),
            job.status,
        )
        ref = JobRef(
            job.id,
            job.tenant_id,
            job.agent_id,
            job.uploaded_by,
            ImportType(job.import_type),
            job.retries,
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
        except (UnreadableFile, WorkerDied) as exc:
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
        """The file's batches from a worker process (`produce`), handed on as they come."""
        work = Work(
            path=str(self._path(job)),
            file_format=job.file_format,
            sheet=job.sheet,
            job=ref,
            owner=self._owner,
            committed_row=job.committed_row,
            batch_size=self._settings.batch_size,
            total_known=job.total is not None,
        )
        tally = self._tally
        assert tally is not None
        with Worker(work) as worker:
            # While a workbook loads whole (xls, ods), the beats keep the lease.
            for message in worker.messages(_BEAT_SECONDS):
                kind = message[0]
                if kind == "batch":
                    _, last_row, rows, payloads = message
                    self._hand_on(last_row, rows, payloads)
                elif kind == "beat":
                    self._heartbeat()
                elif kind == "parsing":
                    self._set_status("parsing")
                elif kind == "header":
                    _, total, header, unknown, exact = message
                    tally.total = total
                    tally.status = "validating"
                    self._lease(
                        status="validating", total=total, header=header, unknown_columns=unknown
                    )
                    if exact:
                        self._frame(self._snapshot(), force=True)
        self._drain()

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
                add(batch, source, validator.validate(source))
                batch.retried_rows.append(number)
                batch.last_row = number
            self._write(ref, batch)
            # The next failed rows are read once these were written (and their errors gone).
            self._drain()
            after = batch.last_row

    # ---- handing batches on, and hearing how they were written ----------------------------

    def _write(self, ref: JobRef, batch: Batch) -> None:
        """Send `batch` to the writers and go on validating while it is written.

        Up to `_WINDOW` batches travel at once: the import's partition delivers them in order,
        and a batch is written only where the one before it ended (the writer's guard), so the
        next batch's rows are matched against what the one before it wrote.
        """
        if self._stopping.is_set():
            raise Stopped
        batch.after_row = self._sent_row
        self._hand_on(batch.last_row, batch.size, wire.encode(ref, batch, owner=self._owner))

    def _hand_on(self, last_row: int, rows: int, payloads: list[bytes]) -> None:
        """Hand on an encoded batch once fewer than `_WINDOW` are unwritten."""
        if self._stopping.is_set():
            raise Stopped
        self._await(_WINDOW - 1)
        self._handoff.send(str(self.import_id), payloads)
        self._outstanding.append(_Sent(last_row, rows, payloads))
        self._sent_row = last_row
        if len(self._outstanding) == 1:
            self._moved = time.monotonic()

    def _drain(self) -> None:
        """Wait until every batch sent was written."""
        self._await(0)

    def _drain_quietly(self) -> None:
        """Let the batches sent be written before the import ends, whatever they come to."""
        try:
            self._await(0, within=_DRAIN_SECONDS)
        except Exception:
            log.warning("import %s: the last batches were not written", self.import_id)

    def _await(self, pending: int, *, within: float | None = None) -> None:
        """Wait until at most `pending` batches are unwritten, renewing the lease meanwhile;
        raises LeaseLost when the import was cancelled or taken over, Stopped on shutdown."""
        deadline = None if within is None else time.monotonic() + within
        while len(self._outstanding) > pending:
            self._observe()
            if len(self._outstanding) <= pending:
                return
            if self._stopping.is_set():
                raise Stopped
            now = time.monotonic()
            if deadline is not None and now > deadline:
                raise TimeoutError("the writers did not answer")
            self._heartbeat()
            if now - self._moved > _RESEND_SECONDS:
                # A batch the writers gave up on (dead-lettered) leaves a gap no later batch
                # fills: send again what is unwritten; what was written is refused.
                log.warning(
                    "import %s: nothing written for %.0f s, sending %d batch(es) again",
                    self.import_id,
                    now - self._moved,
                    len(self._outstanding),
                )
                self._moved = now
                for sent in self._outstanding:
                    self._handoff.send(str(self.import_id), sent.payloads)
            self._handoff.wait(_POLL_SECONDS)

    def _observe(self) -> None:
        """Read how far the writers got (one indexed read): the counts, and the batches done."""
        position = self._run(self._store.position(self.tenant_id, self.import_id))
        if position is None or not position.expects(self._owner, self._retries):
            raise LeaseLost(str(self.import_id))
        while self._outstanding and self._outstanding[0].last_row <= position.committed_row:
            self._done_here += self._outstanding.popleft().rows
        if position.committed_row == self._acked_row:
            return
        self._acked_row = position.committed_row
        self._moved = time.monotonic()
        self._last_lease = self._moved  # each written batch renewed the lease
        tally = self._tally
        assert tally is not None
        tally.counts = Counts(
            position.created, position.updated, position.unchanged, position.failed
        )
        tally.status = "writing"
        if position.created - self._created_before >= self._analyze_at:
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
