"""Spreadsheets made in the tests, in every format, and a client for the import endpoints."""

from __future__ import annotations

import asyncio
import csv
import io
import re
import zipfile
from collections.abc import Sequence
from typing import Any

import aiohttp
import openpyxl
import pyexcel
import xlwt

from tests.support.api import Account, Api

IMPORTS = "/api/v1/imports"
FINAL = {"completed", "completed_with_errors", "failed", "cancelled"}

Rows = Sequence[Sequence[Any]]


def csv_bytes(rows: Rows, encoding: str = "utf-8") -> bytes:
    text = io.StringIO()
    csv.writer(text).writerows([["" if c is None else c for c in row] for row in rows])
    return text.getvalue().encode(encoding)


def xlsx_bytes(
    rows: Rows,
    *,
    merge: str | None = None,
    sheets: dict[str, Rows] | None = None,
    cached: dict[str, Any] | None = None,
) -> bytes:
    """An xlsx; `merge` merges a range (a banner over the header); `cached` gives formula cells
    (written as `=...` strings) the cached values Excel would have stored."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Book"
    for row in rows:
        sheet.append(list(row))
    if merge:
        sheet.merge_cells(merge)
    for name, extra in (sheets or {}).items():
        other = book.create_sheet(name)
        for row in extra:
            other.append(list(row))
    stream = io.BytesIO()
    book.save(stream)
    data = stream.getvalue()
    return _with_cached_values(data, cached) if cached else data


def _with_cached_values(data: bytes, cached: dict[str, Any]) -> bytes:
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            content = source.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                text = content.decode()
                for ref, value in cached.items():
                    # A text result is typed "str", as Excel stores it; a number is untyped.
                    kind = "" if isinstance(value, int | float) else ' t="str"'
                    text = re.sub(
                        rf'<c r="{ref}"[^>]*>(<f>[^<]*</f>)(<v\s*/>|<v></v>)?',
                        rf'<c r="{ref}"{kind}>\g<1><v>{value}</v>',
                        text,
                    )
                content = text.encode()
            target.writestr(item, content)
    return out.getvalue()


def xls_bytes(rows: Rows) -> bytes:
    book = xlwt.Workbook()
    sheet = book.add_sheet("Book")
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            if value is not None:
                sheet.write(r, c, value)
    stream = io.BytesIO()
    book.save(stream)
    return stream.getvalue()


def ods_bytes(rows: Rows) -> bytes:
    stream = pyexcel.Sheet([list(row) for row in rows]).save_to_memory("ods")
    return bytes(stream.getvalue())


def read_book(data: bytes, fmt: str) -> list[list[Any]]:
    options = {"encoding": "utf-8-sig"} if fmt == "csv" else {}
    return [list(r) for r in pyexcel.get_array(file_content=data, file_type=fmt, **options)]


async def upload(
    api: Api,
    account: Account,
    name: str,
    data: bytes,
    import_type: str = "customers",
    *,
    expect: int | None = 202,
    fields: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    form = aiohttp.FormData()
    form.add_field("import_type", import_type)
    for key, value in (fields or {}).items():
        form.add_field(key, value)
    form.add_field("file", data, filename=name, content_type="application/octet-stream")
    response = await api.client.post(IMPORTS, data=form, headers=account.headers)
    body = await response.json()
    if expect is not None:
        assert response.status == expect, (response.status, body)
    return response.status, body


async def finished(
    api: Api, account: Account, import_id: str, within: float = 60
) -> dict[str, Any]:
    """The import once it is in a final state."""
    async with asyncio.timeout(within):
        while True:
            _, body = await api.call(
                "GET", f"{IMPORTS}/{import_id}", token=account.access_token, expect=200
            )
            if body["data"]["status"] in FINAL:
                return dict(body["data"])
            await asyncio.sleep(0.05)


async def import_file(
    api: Api,
    account: Account,
    name: str,
    data: bytes,
    import_type: str = "customers",
    **fields: str,
) -> dict[str, Any]:
    _, body = await upload(api, account, name, data, import_type, fields=fields)
    return await finished(api, account, body["data"]["import_id"])


async def errors_of(api: Api, account: Account, import_id: str) -> list[dict[str, Any]]:
    _, body = await api.call(
        "GET", f"{IMPORTS}/{import_id}/errors?limit=100", token=account.access_token, expect=200
    )
    return list(body["data"]["items"])
