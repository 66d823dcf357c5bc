"""The producing stage of an import: parse, find the header, validate, batch and encode, run in
a worker process of its own that streams encoded batches back to the pipeline.

Parsing and validation (pyexcel, phonenumbers) are CPU work: on the server's interpreter they
took turns with the event loop for its lock and held the writing stage to a fraction of the
database's pace. In a worker process they run beside it; the server only relays the bytes of
each batch, which are already the `imports.rows` payloads. The worker is forked from a
forkserver that has this module loaded, so an import starts in milliseconds.

Memory stays bounded: the worker holds one batch (an xls or ods sheet, which pyexcel loads
whole, once), and the pipe between the processes holds what the pipeline has not read yet, so a
pipeline that waits for its writers stops the worker too. A worker that dies ends its import as
failed with the reason; a pipeline that stops (shutdown, cancel, a lost lease) ends its worker.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import signal
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from mitra.imports import wire
from mitra.imports.columns import HEADER_SEARCH_ROWS, HeaderMap, find_header
from mitra.imports.reader import UnreadableFile, open_rows, sheet_size
from mitra.imports.rows import CleanRow, RowError, RowValidator, SourceRow, source_row
from mitra.imports.writer import Batch, JobRef
from mitra.models import ImportType

log = logging.getLogger("mitra.imports")

_BEAT_ROWS = 2000
"""Rows read between two beats: the pipeline renews its lease and checks for a stop on them."""

Message = tuple[Any, ...]
"""What the producer says, in order:

- `("parsing",)`: counting the rows first (the file does not say how many it has);
- `("header", total, header, unknown_columns, exact)`: the header found, and the total of rows
  (counted: `exact`; else the count a workbook declares, or None);
- `("beat",)`: still reading;
- `("batch", last_row, rows, payloads)`: a batch up to `last_row` with `rows` rows, encoded.
"""


@dataclass(frozen=True)
class Work:
    """What a worker needs to produce an import's batches."""

    path: str
    file_format: str
    sheet: str | None
    job: JobRef
    owner: str
    committed_row: int
    """The last row written before: the batches start after it (a resumed import)."""
    batch_size: int
    total_known: bool
    """The rows were counted before (a resumed import): no counting pass."""


def produce(work: Work) -> Iterator[Message]:
    """The import's messages; raises UnreadableFile for a file it cannot read."""
    path = Path(work.path)
    kind = work.job.import_type
    # A workbook says how many rows it has: its rows are then read once, not twice (the
    # parse of an xlsx is the slowest part). Blank rows make that an estimate until the end,
    # when the total is the rows processed.
    sized = not work.total_known and work.file_format == "xlsx"
    size = sheet_size(path, work.sheet) if sized else None
    if not work.total_known and size is None:
        yield ("parsing",)
        with open_rows(path, work.file_format, work.sheet) as rows:
            header, first = _header(rows, kind)
            total = 0
            for number, raw in _numbered(first, rows):
                if number > header.row_index + 1 and source_row(number, raw) is not None:
                    total += 1
                if number % _BEAT_ROWS == 0:
                    yield ("beat",)
        yield ("header", total, header.header, header.unknown, True)
    yield from _batches(work, path, kind, size)


def _batches(work: Work, path: Path, kind: ImportType, size: int | None) -> Iterator[Message]:
    committed = work.committed_row
    sent = committed
    with open_rows(path, work.file_format, work.sheet) as rows:
        header, first = _header(rows, kind)
        if size is not None:
            yield ("header", max(size - header.row_index - 1, 0), header.header, header.unknown,
                   False)  # fmt: skip
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
            add(batch, source, validator.validate(source))
            if batch.size >= work.batch_size:
                batch.after_row, sent = sent, number
                yield _encoded(work, batch)
                batch = Batch(last_row=number)
            elif number % _BEAT_ROWS == 0:
                yield ("beat",)
        if batch.size or batch.last_row > sent:
            batch.after_row = sent
            yield _encoded(work, batch)


def _encoded(work: Work, batch: Batch) -> Message:
    return ("batch", batch.last_row, batch.size, wire.encode(work.job, batch, owner=work.owner))


def add(batch: Batch, source: SourceRow, result: CleanRow | list[RowError]) -> None:
    """A validated row into `batch`, with its cells (for the error report)."""
    if isinstance(result, CleanRow):
        batch.rows.append(result)
    else:
        batch.errors.extend(result)
    batch.sources[source.row_number] = source


def _header(
    rows: Iterator[list[Any]], import_type: ImportType
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


def _numbered(first: list[list[Any]], rest: Iterator[list[Any]]) -> Iterator[tuple[int, list[Any]]]:
    """Every row with its 1-based number in the sheet: the ones read to find the header, then
    the rest of the stream."""
    yield from enumerate(first, start=1)
    yield from enumerate(rest, start=len(first) + 1)


# ---- the worker process ------------------------------------------------------------------


class WorkerDied(Exception):
    """The worker process ended without finishing (killed, out of memory, a crash)."""


class Worker:
    """One import's producer in a process of its own; its messages read on the caller's
    thread (`messages`). Close it (or use it as a context manager) to end the process."""

    def __init__(self, work: Work) -> None:
        context = _context()
        self._conn, child = context.Pipe(duplex=False)
        self._process = context.Process(
            target=_work, args=(work, child), name=f"mitra-import-{work.job.import_id}", daemon=True
        )
        self._process.start()
        child.close()
        self.import_id: uuid.UUID = work.job.import_id

    @property
    def pid(self) -> int | None:
        pid = self._process.pid
        return int(pid) if pid is not None else None

    def messages(self, beat_seconds: float) -> Iterator[Message]:
        """The producer's messages, with a `("beat",)` whenever none came for `beat_seconds`
        (a workbook that loads whole says nothing for a while); raises UnreadableFile as the
        producer did, WorkerDied when the process ended without finishing."""
        while True:
            if not self._conn.poll(beat_seconds):
                if not self._process.is_alive() and not self._conn.poll(0):
                    raise WorkerDied(self._death())
                yield ("beat",)
                continue
            try:
                message = self._conn.recv()
            except (EOFError, OSError):
                raise WorkerDied(self._death()) from None
            kind = message[0]
            if kind == "done":
                return
            if kind == "unreadable":
                raise UnreadableFile(message[1])
            if kind == "crashed":
                raise WorkerDied(f"the import's worker process failed ({message[1]})")
            yield message

    def _death(self) -> str:
        self._process.join(1.0)
        code = self._process.exitcode
        how = f"exit code {code}" if code is None or code >= 0 else f"signal {-code}"
        return f"the import's worker process stopped unexpectedly ({how})"

    def close(self) -> None:
        self._conn.close()
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(5.0)
            if self._process.is_alive():
                self._process.kill()
                self._process.join(5.0)
        self._process.close()

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _context() -> Any:
    context = multiprocessing.get_context("forkserver")
    # Loaded once by the forkserver (before its first fork), not by every worker.
    context.set_forkserver_preload([__name__])
    return context


def _work(work: Work, conn: Connection) -> None:
    """The worker's body: every message to the pipe, then `done` (or why not)."""
    # Ctrl-C in a terminal reaches the whole process group: the server decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        for message in produce(work):
            conn.send(message)
        conn.send(("done",))
    except UnreadableFile as exc:
        _last_word(conn, ("unreadable", str(exc)))
    except (BrokenPipeError, ConnectionResetError):
        return  # the pipeline is gone (stopped, or its server died): nothing to say
    except Exception as exc:
        log.exception("import %s: the worker failed", work.job.import_id)
        _last_word(conn, ("crashed", type(exc).__name__))
    finally:
        conn.close()


def _last_word(conn: Connection, message: Message) -> None:
    with contextlib.suppress(OSError):
        conn.send(message)
