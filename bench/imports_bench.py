"""Benchmark of the import pipeline end to end, beside its two ceilings measured in the same run.

Run from the repository root: `python -m bench.imports_bench` (`make bench-imports`). For each
database (SQLite, then PostgreSQL in a private database created and dropped by the run;
`--database sqlite|postgres|both`) and each format (xlsx, csv) it:

- uploads a book of `--rows` (100,000) customers with one policy each to a real `mitra serve`
  process (its own process on 127.0.0.1, the demo agent's book) and polls the import until it
  ends: rows/s from the upload's start to the end, and the peak RSS (sampled) of the server
  with its child processes (the import's worker);
- parses the same file with pyexcel alone (`iget_array`, every cell touched) in a child
  process of its own: rows/s and that process's peak RSS (the parse ceiling);
- inserts the same rows, already clean, with a bare SQLAlchemy Core executemany (a customer and
  a policy per row, in transactions of the pipeline's batch size, no validation, no lookups)
  into the same database: rows/s (the write ceiling).

Then a verdict per target (xlsx on SQLite under 60 s and 512 MB; the csv pipeline at least half
the bare insert's rows/s on each database) and one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import asdict, dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import psutil  # type: ignore[import-untyped]
from sqlalchemy import Table, insert, select

from mitra.db import Database, Scope, utcnow
from mitra.models import Customer, Policy, Tenant, User
from mitra.settings import DatabaseSettings
from tests.support.databases import create_private_postgres, drop_private_postgres

ROOT = Path(__file__).resolve().parent.parent
SERVING = re.compile(r"Mitra is serving on (http://127\.0\.0\.1:\d+)")
AGENT = ("agent@demo.example.com", "demo-agent-2026")
HEADER = ["Customer Name", "Mobile", "Email", "DOB", "Policy No", "Plan Type", "Plan",
          "Sum Assured", "Premium (Rs)", "Mode", "Start Date"]  # fmt: skip
BATCH = 500
_CUSTOMERS: Table = Customer.__table__  # type: ignore[assignment]
_POLICIES: Table = Policy.__table__  # type: ignore[assignment]


@dataclass
class Figure:
    database: str
    fmt: str
    rows: int
    pipeline_seconds: float
    pipeline_rows_per_second: float
    server_peak_rss_mb: float
    parse_rows_per_second: float
    parse_peak_rss_mb: float
    insert_rows_per_second: float
    status: str


def row(n: int, prefix: int) -> list[Any]:
    return [f"Customer {prefix}-{n}", f"{prefix}{n:09d}", f"c{prefix}x{n}@example.com",
            "17/05/1980", f"B{prefix}-{n:07d}", "endowment", "Jeevan Anand", "5,00,000",
            "2,450.50", "quarterly", "01/04/2020"]  # fmt: skip


def write_book(path: Path, fmt: str, rows: int, prefix: int) -> None:
    if fmt == "csv":
        import csv

        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(HEADER)
            for n in range(rows):
                writer.writerow(row(n, prefix))
        return
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("Book")
    sheet.append(HEADER)
    for n in range(rows):
        sheet.append(row(n, prefix))
    book.save(path)


# ---- the pipeline, end to end ----------------------------------------------------------------


def serve(url: str, workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    env = {
        **os.environ,
        "MITRA_DATABASE_URL": url,
        "MITRA_LOGGING_LEVEL": "WARNING",
        "MITRA_IMPORTS_DIRECTORY": str(workdir / "imports"),
        "MITRA_AUTH_RATE_LIMIT_PER_IP": "100000",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "handlers.cli", "serve", "--port", "0"],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert process.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stdout.readline().decode()
        found = SERVING.search(line)
        if found:
            return process, found.group(1)
    process.kill()
    raise RuntimeError("mitra serve did not start")


def call(method: str, url: str, token: str | None = None, body: bytes | None = None,
         content_type: str = "application/json") -> Any:  # fmt: skip
    request = urllib.request.Request(url, data=body, method=method)  # noqa: S310 - loopback
    request.add_header("Content-Type", content_type)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310
        return json.loads(response.read())


def multipart(path: Path) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="import_type"\r\n\r\n'
        "customers_and_policies\r\n".encode(),
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"'
        "\r\nContent-Type: application/octet-stream\r\n\r\n".encode(),
        path.read_bytes(),
        f"\r\n--{boundary}--\r\n".encode(),
    ]
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def _rss_with_workers(server: Any) -> int:
    """The server's RSS and its children's (the forkserver and each import's worker process,
    which parse and validate): the memory the import costs, wherever it runs."""
    total = server.memory_info().rss
    for child in server.children(recursive=True):
        # A child may end between the listing and the read.
        with contextlib.suppress(psutil.Error):
            total += child.memory_info().rss
    return int(total)


def run_pipeline(url: str, workdir: Path, book: Path) -> tuple[float, float, dict[str, Any]]:
    process, base = serve(url, workdir)
    try:
        server = psutil.Process(process.pid)
        login = json.dumps({"identifier": AGENT[0], "password": AGENT[1]}).encode()
        token = call("POST", f"{base}/api/v1/auth/login", body=login)["data"]["access_token"]
        body, content_type = multipart(book)
        peak = _rss_with_workers(server)
        started = time.perf_counter()
        accepted = call("POST", f"{base}/api/v1/imports", token, body, content_type)
        import_id = accepted["data"]["import_id"]
        while True:
            peak = max(peak, _rss_with_workers(server))
            state = call("GET", f"{base}/api/v1/imports/{import_id}", token)["data"]
            if state["status"] not in ("queued", "parsing", "validating", "writing"):
                break
            time.sleep(0.25)
        return time.perf_counter() - started, peak / 2**20, state
    finally:
        process.terminate()
        process.wait(30)


# ---- the ceilings ----------------------------------------------------------------------------

PARSE = """
import resource, sys, time, pyexcel
path, fmt = sys.argv[1], sys.argv[2]
options = {"file_name": path}
if fmt == "csv":
    options.update(auto_detect_int=False, auto_detect_float=False, auto_detect_datetime=False)
else:
    options.update(skip_hidden_row_and_column=False)
start = time.perf_counter()
rows = cells = 0
for row in pyexcel.iget_array(**options):
    rows += 1
    cells += len(row)
pyexcel.free_resources()
print(rows, cells, time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def bare_parse(book: Path, fmt: str) -> tuple[float, float]:
    out = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", PARSE, str(book), fmt], capture_output=True, check=True, text=True
    ).stdout.split()
    rows, seconds, rss_kb = int(out[0]) - 1, float(out[2]), int(out[3])
    return rows / seconds, rss_kb / 1024


async def bare_insert(url: str, rows: int, prefix: int) -> float:
    """The clean rows (a customer and a policy each) by Core executemany, batch by batch."""
    database = Database(DatabaseSettings(url=url))
    try:
        async with database.session(Scope.system()) as session:
            tenant_id = await session.scalar(select(Tenant.id).where(Tenant.slug == "demo"))
            agent_id = await session.scalar(select(User.id).where(User.email == AGENT[0]))
            assert tenant_id is not None
            assert agent_id is not None
        now = utcnow()
        customers, policies = [], []
        for n in range(rows):
            customer_id = uuid.uuid4()
            customers.append({
                "id": customer_id, "tenant_id": tenant_id, "agent_id": agent_id, "user_id": None,
                "full_name": f"Customer {prefix}-{n}", "phone": f"+91{prefix}{n:09d}",
                "email": f"c{prefix}x{n}@example.com", "date_of_birth": date(1980, 5, 17),
                "address": None, "preferred_language": "en", "created_by": agent_id,
                "updated_by": agent_id, "created_at": now, "updated_at": now, "deleted_at": None,
            })  # fmt: skip
            policies.append({
                "id": uuid.uuid4(), "tenant_id": tenant_id, "agent_id": agent_id,
                "customer_id": customer_id, "policy_number": f"X{prefix}-{n:07d}",
                "policy_type": "endowment", "plan_name": "Jeevan Anand",
                "sum_assured": Decimal("500000.00"), "premium_amount": Decimal("2450.50"),
                "premium_frequency": "quarterly", "start_date": date(2020, 4, 1),
                "maturity_date": None, "next_due_date": None, "status": "active",
                "created_by": agent_id, "updated_by": agent_id, "created_at": now,
                "updated_at": now, "deleted_at": None,
            })  # fmt: skip
        started = time.perf_counter()
        for first in range(0, rows, BATCH):
            async with database.transaction(Scope.system()) as session:
                connection = await session.connection()
                await connection.execute(insert(_CUSTOMERS), customers[first : first + BATCH])
                await connection.execute(insert(_POLICIES), policies[first : first + BATCH])
        return rows / (time.perf_counter() - started)
    finally:
        await database.dispose()


# ---- the run ---------------------------------------------------------------------------------


def migrate_sqlite(url: str, workdir: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "handlers.cli", "migrate"],
        cwd=workdir,
        env={**os.environ, "MITRA_DATABASE_URL": url},
        check=True,
        capture_output=True,
    )


def measure(database: str, url: str, workdir: Path, rows: int) -> list[Figure]:
    figures = []
    for index, fmt in enumerate(("xlsx", "csv")):
        prefix = 6 + index  # distinct phones and policy numbers per book: every row is new
        book = workdir / f"book-{database}.{fmt}"
        write_book(book, fmt, rows, prefix)
        seconds, peak, state = run_pipeline(url, workdir, book)
        parse_rate, parse_rss = bare_parse(book, fmt)
        insert_rate = asyncio.run(bare_insert(url, rows, prefix + 2))
        outcome = f"{state['status']} created={state['created']} failed={state['failed']}"
        figure = Figure(database, fmt, rows, round(seconds, 1), round(rows / seconds),
                        round(peak), round(parse_rate), round(parse_rss), round(insert_rate),
                        outcome)  # fmt: skip
        print(
            f"{database:8} {fmt:4}  pipeline {figure.pipeline_rows_per_second:>6} rows/s "
            f"({figure.pipeline_seconds} s, peak RSS {figure.server_peak_rss_mb} MB)  "
            f"bare parse {figure.parse_rows_per_second:>6} rows/s ({figure.parse_peak_rss_mb} MB)"
            f"  bare insert {figure.insert_rows_per_second:>6} rows/s  "
            f"pipeline/insert {figure.pipeline_rows_per_second / insert_rate:.2f}  "
            f"[{figure.status}]",
            flush=True,
        )
        figures.append(figure)
    return figures


def verdicts(figures: list[Figure]) -> list[str]:
    lines = []
    for f in figures:
        if f.database == "sqlite" and f.fmt == "xlsx":
            met = f.pipeline_seconds < 60 and f.server_peak_rss_mb < 512
            lines.append(
                f"{'ok' if met else 'MISSED'}: xlsx on SQLite {f.pipeline_seconds} s "
                f"(< 60 s), {f.server_peak_rss_mb} MB (< 512 MB)"
            )
        if f.fmt == "csv":
            ratio = f.pipeline_rows_per_second / f.insert_rows_per_second
            lines.append(
                f"{'ok' if ratio >= 0.5 else 'MISSED'}: csv on {f.database} at {ratio:.2f} of "
                "the bare insert's rows/s (>= 0.5)"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="mitra-imports-bench-") as tmp:
        workdir = Path(tmp)
        if args.database in ("sqlite", "both"):
            url = f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
            migrate_sqlite(url, workdir)
            figures += measure("sqlite", url, workdir, args.rows)
        if args.database in ("postgres", "both"):
            url = asyncio.run(create_private_postgres())
            try:
                figures += measure("postgres", url, workdir, args.rows)
            finally:
                asyncio.run(drop_private_postgres(url))
    for line in verdicts(figures):
        print(line)
    print(json.dumps([asdict(f) for f in figures]))


if __name__ == "__main__":
    main()
