"""A batch of validated rows as the payload of one `imports.rows` event, and back.

The pipeline validates, the writing stage (on any instance) writes: what passes between them
is this payload, so it carries everything the writer needs without reading the file: the clean
rows, the rows' errors, the text of every row's cells (any row may still fail in the writer,
and its cells go to the error report) and the rows a retry runs again. Clean values keep their
types exactly (Decimal, date, the policy enums) through JSON by their field's known type.

One event stays well under Kafka's default 1 MB message: a batch whose payload is larger is
split into consecutive parts, each its own event (`after_row` .. `last_row` chained).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

import orjson

from mitra.imports.rows import CleanRow, RowError, SourceRow
from mitra.imports.values import as_text
from mitra.imports.writer import Batch, JobRef
from mitra.models import ImportType, PolicyStatus, PolicyType, PremiumFrequency

MAX_PAYLOAD_BYTES = 512 * 1024
"""A payload larger than this is split (the envelope adds well under a kilobyte)."""
_CELL_LIMIT = 1000
"""A row too large for an event on its own keeps this many characters of each cell."""

_DECODE: dict[str, Callable[[Any], Any]] = {
    "date_of_birth": date.fromisoformat,
    "start_date": date.fromisoformat,
    "maturity_date": date.fromisoformat,
    "next_due_date": date.fromisoformat,
    "sum_assured": Decimal,
    "premium_amount": Decimal,
    "policy_type": PolicyType,
    "premium_frequency": PremiumFrequency,
    "status": PolicyStatus,
}
"""The clean fields that are not text, by the type their column's parser gives."""


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not a clean import value")


def _cells(source: SourceRow) -> list[Any]:
    # Text cells as read (`as_text` of them is the same on the writer's side); any other cell
    # as its text, which is all the writer ever uses of it.
    return [cell if type(cell) is str else as_text(cell) for cell in source.raw]


def encode(job: JobRef, batch: Batch, *, owner: str, limit: int = MAX_PAYLOAD_BYTES) -> list[bytes]:
    """`batch` as one payload (JSON bytes), or several consecutive ones when it is too large."""
    numbers = sorted({r.row_number for r in batch.rows} | {e.row_number for e in batch.errors})
    data = _payload(job, batch, owner)
    if len(data) <= limit or len(numbers) <= 1:
        if len(data) > limit:
            return [_payload(job, _shrunk(batch), owner)]
        return [data]
    middle = numbers[len(numbers) // 2 - 1]
    first, second = batch.split(middle)
    return encode(job, first, owner=owner, limit=limit) + encode(
        job, second, owner=owner, limit=limit
    )


def _shrunk(batch: Batch) -> Batch:
    """A single row too large for an event: its cells cut short, so its error report still
    shows what it held."""
    sources = {
        number: SourceRow(number, [as_text(c)[:_CELL_LIMIT] for c in source.raw[:200]])
        for number, source in batch.sources.items()
    }
    errors = [
        RowError(row.row_number, None, None, "the row is too large to import") for row in batch.rows
    ]
    return Batch(
        errors=[*batch.errors, *errors],
        sources=sources,
        after_row=batch.after_row,
        last_row=batch.last_row,
        retried_rows=list(batch.retried_rows),
    )


def _payload(job: JobRef, batch: Batch, owner: str) -> bytes:
    return orjson.dumps(
        {
            "import_id": str(job.import_id),
            "tenant_id": str(job.tenant_id),
            "agent_id": str(job.agent_id),
            "uploaded_by": str(job.uploaded_by),
            "import_type": job.import_type.value,
            "retries": job.retries,
            "owner": owner,
            "after_row": batch.after_row,
            "last_row": batch.last_row,
            "rows": [[r.row_number, r.customer, r.policy] for r in batch.rows],
            "errors": [[e.row_number, e.column, e.value, e.message] for e in batch.errors],
            "cells": [[n, _cells(s)] for n, s in batch.sources.items()],
            "retried": batch.retried_rows,
        },
        default=_default,
    )


def decode(payload: dict[str, Any]) -> tuple[JobRef, Batch, str]:
    """(the import, the batch, the lease owner that sent it) from a payload's JSON data;
    raises ValueError (or KeyError, TypeError) for a payload that is not one."""
    job = JobRef(
        uuid.UUID(payload["import_id"]),
        uuid.UUID(payload["tenant_id"]),
        uuid.UUID(payload["agent_id"]),
        uuid.UUID(payload["uploaded_by"]),
        ImportType(payload["import_type"]),
        int(payload["retries"]),
    )
    batch = Batch(
        rows=[CleanRow(int(n), _typed(c), _typed(p)) for n, c, p in payload["rows"]],
        errors=[RowError(int(n), c, v, m) for n, c, v, m in payload["errors"]],
        sources={int(n): SourceRow(int(n), cells) for n, cells in payload["cells"]},
        after_row=int(payload["after_row"]),
        last_row=int(payload["last_row"]),
        retried_rows=[int(n) for n in payload["retried"]],
    )
    return job, batch, str(payload["owner"])


def _typed(fields: dict[str, Any]) -> dict[str, Any]:
    for name, value in fields.items():
        decode_field = _DECODE.get(name)
        if decode_field is not None:
            fields[name] = decode_field(value)
    return fields
