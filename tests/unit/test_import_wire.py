"""A batch of validated rows through the `imports.rows` payload and back: the same values of the
same types, cells as the error report shows them, and no event larger than a Kafka message."""

from __future__ import annotations

import itertools
import uuid
from datetime import date, datetime
from typing import Any

import orjson
import pytest

from actors.imports import rows_envelope
from mitra.imports import wire
from mitra.imports.columns import CUSTOMER_COLUMNS, POLICY_COLUMNS
from mitra.imports.rows import CleanRow, RowError, SourceRow
from mitra.imports.writer import Batch, JobRef
from mitra.models import ImportType
from streams.envelope import Event
from streams.topics import IMPORTS_ROWS

JOB = JobRef(uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), ImportType.CUSTOMERS, 2)


def round_trip(batch: Batch, **options: Any) -> list[tuple[JobRef, Batch, str]]:
    return [wire.decode(orjson.loads(p)) for p in wire.encode(JOB, batch, owner="me", **options)]


@pytest.mark.parametrize("column", [*CUSTOMER_COLUMNS, *POLICY_COLUMNS], ids=lambda c: c.name)
def test_every_columns_clean_value_comes_back_equal_and_of_its_type(column: Any) -> None:
    value = column.parse(column.example)
    fields = {column.name: value}
    batch = Batch(rows=[CleanRow(7, dict(fields), dict(fields))], after_row=6, last_row=7)
    [(job, back, owner)] = round_trip(batch)
    assert (job, owner) == (JOB, "me")
    [row] = back.rows
    for got in (row.customer[column.name], row.policy[column.name]):
        assert got == value
        assert type(got) is type(value)


def test_errors_cells_and_retried_rows_come_back_as_the_writer_uses_them() -> None:
    cells = ["=HYPERLINK(1)", 9876543210.0, datetime(2024, 5, 1, 10, 30), date(2024, 5, 1), None,
             True, 12]  # fmt: skip
    batch = Batch(
        errors=[RowError(3, "Mobile", "12345", "not a phone number"), RowError(3, None, None, "x")],
        sources={3: SourceRow(3, cells)},
        after_row=1,
        last_row=4,
        retried_rows=[3],
    )
    [(_, back, _)] = round_trip(batch)
    assert back.errors == batch.errors
    assert back.sources[3].cells == SourceRow(3, cells).cells
    assert (back.after_row, back.last_row, back.retried_rows) == (1, 4, [3])


def test_a_large_batch_is_split_into_consecutive_events_under_the_limit() -> None:
    batch = Batch(after_row=10, last_row=120)
    for number in range(11, 111):
        batch.rows.append(CleanRow(number, {"full_name": "x" * 100, "phone": f"+91{number}"}))
        batch.sources[number] = SourceRow(number, ["y" * 900])
    payloads = wire.encode(JOB, batch, owner="me", limit=20_000)
    assert len(payloads) > 5
    assert all(len(p) <= 20_000 for p in payloads)
    parts = [wire.decode(orjson.loads(p))[1] for p in payloads]
    assert parts[0].after_row == 10
    assert parts[-1].last_row == 120  # blank rows at the end still move the import on
    for earlier, later in itertools.pairwise(parts):
        assert later.after_row == earlier.last_row
    assert [r.row_number for p in parts for r in p.rows] == list(range(11, 111))


def test_one_row_too_large_for_an_event_fails_with_its_cells_cut_short() -> None:
    batch = Batch(
        rows=[CleanRow(5, {"full_name": "x", "phone": "+919876543210"})],
        sources={5: SourceRow(5, ["z" * 50_000])},
        after_row=4,
        last_row=5,
    )
    [payload] = wire.encode(JOB, batch, owner="me", limit=20_000)
    assert len(payload) <= 20_000
    back = wire.decode(orjson.loads(payload))[1]
    assert back.rows == []
    assert [e.message for e in back.errors] == ["the row is too large to import"]
    assert back.sources[5].cells == ["z" * 1000]


def test_the_event_is_an_envelope_whose_payload_the_catalog_describes() -> None:
    batch = Batch(rows=[CleanRow(2, {"full_name": "A", "phone": "+919876543210"})], last_row=2)
    [payload] = wire.encode(JOB, batch, owner="me")
    event = Event.decode(rows_envelope(str(JOB.tenant_id), str(JOB.import_id), payload))
    assert (event.type, event.key) == ("imports.rows", str(JOB.import_id))
    described = IMPORTS_ROWS.payload(event)
    assert (described.import_id, described.retries, described.last_row) == (JOB.import_id, 2, 2)
