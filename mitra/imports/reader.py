"""Rows of a spreadsheet, streamed through pyexcel: one row in memory at a time.

Blocking and CPU-bound: it runs on the import actor's thread, never on the event loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import openpyxl
import pyexcel

from mitra.imports.sniff import csv_encoding


class UnreadableFile(Exception):
    """The file could not be parsed (a damaged workbook, a missing sheet)."""


@contextmanager
def open_rows(path: Path, file_format: str, sheet: str | None) -> Iterator[Iterator[list[Any]]]:
    """The rows of `sheet` (default the first), as lists of cell values.

    xlsx is opened read-only with cached formula values (`data_only`), which is what lets
    openpyxl stream it; csv cells stay text (a phone number `098765 43210` or a policy number
    with leading zeros must not become a number), in UTF-8 or Windows-1252 as detected.
    """
    options: dict[str, Any] = {"file_name": str(path)}
    if sheet:
        options["sheet_name"] = sheet
    if file_format == "csv":
        options.update(
            encoding=csv_encoding(path),
            auto_detect_int=False,
            auto_detect_float=False,
            auto_detect_datetime=False,
        )
    elif file_format == "xlsx":
        # pyexcel-xlsx loads the whole workbook to skip hidden rows unless told not to.
        options.update(skip_hidden_row_and_column=False, detect_merged_cells=False)
    try:
        rows = pyexcel.iget_array(**options)
        yield _guarded(rows)
    except UnreadableFile:
        raise
    except (KeyError, ValueError, IndexError) as exc:
        raise UnreadableFile(_reason(exc, sheet)) from None
    except Exception as exc:
        raise UnreadableFile(f"the file could not be read ({type(exc).__name__})") from None
    finally:
        pyexcel.free_resources()


def sheet_size(path: Path, sheet: str | None) -> int | None:
    """The row count an xlsx sheet declares (its dimension), without reading its rows; None
    when the file does not say or cannot be opened (the rows are then counted)."""
    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception:
        return None
    try:
        visible = [s for s in book.worksheets if s.sheet_state != "hidden"]
        if sheet:
            found = book[sheet] if sheet in book.sheetnames else None
        else:
            found = visible[0] if visible else None
        rows = found.max_row if found is not None else None
        return rows if isinstance(rows, int) and rows > 0 else None
    finally:
        book.close()


def _guarded(rows: Iterator[list[Any]]) -> Iterator[list[Any]]:
    try:
        yield from rows
    except (KeyError, ValueError, IndexError) as exc:
        raise UnreadableFile(_reason(exc, None)) from None
    except Exception as exc:
        raise UnreadableFile(f"the file could not be read ({type(exc).__name__})") from None


def _reason(exc: Exception, sheet: str | None) -> str:
    if sheet and isinstance(exc, KeyError | ValueError | IndexError):
        return f"the file could not be read (no sheet named {sheet!r}?)"
    return f"the file could not be read ({type(exc).__name__})"
