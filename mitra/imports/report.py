"""Files given back to agents: the failed rows with an error column, and the blank template.

Every text cell that a spreadsheet would take for a formula (`=`, `+`, `-`, `@`, a tab or a
carriage return first) is written with a leading apostrophe, so a row such as
`=HYPERLINK("http://evil", "click")` comes back as text, never as a live formula (CSV
injection). Blocking: build the files off the loop.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

import pyexcel

from mitra.imports.columns import columns_for
from mitra.models import ImportType

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def escape_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def failed_rows_file(
    header: Sequence[str], rows: Sequence[tuple[int, Sequence[Any], Sequence[str]]], fmt: str
) -> bytes:
    """The failed rows as the file had them, plus `Row` (its number there) and `Error`."""
    width = max([len(header), *(len(raw) for _, raw, _ in rows)], default=0)
    table: list[list[Any]] = [[*header, *[""] * (width - len(header)), "Row", "Error"]]
    for number, raw, messages in rows:
        cells = [*raw, *[""] * (width - len(raw))]
        table.append([*cells, number, "; ".join(messages)])
    return _render(table, fmt)


def template_file(import_type: ImportType, fmt: str) -> bytes:
    columns = columns_for(import_type)
    return _render([[c.label for c in columns], [c.example for c in columns]], fmt)


def _render(table: list[list[Any]], fmt: str) -> bytes:
    safe = [[escape_cell(cell) for cell in row] for row in table]
    if fmt == "csv":
        text = io.StringIO()
        csv.writer(text).writerows(safe)
        # A BOM, so that Excel opens the UTF-8 (names in Devanagari or Tamil) as UTF-8.
        return ("\ufeff" + text.getvalue()).encode("utf-8")
    stream = pyexcel.Sheet(safe).save_to_memory("xlsx")
    return bytes(stream.getvalue())
