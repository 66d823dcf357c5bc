"""The parse and validation of an import run in a worker process: a worker that dies fails its
import with the reason instead of leaving it hanging, and while a workbook loads whole (xls) the
import keeps its lease, so no other instance takes it over."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from datetime import datetime
from pathlib import Path

import psutil  # type: ignore[import-untyped]
import pytest
from sqlalchemy import select

from handlers.keys import DATABASE
from mitra.db import Scope, utcnow
from mitra.models import ImportJob, Role
from mitra.settings import Settings
from tests.conftest import SettingsFactory
from tests.support.api import Api
from tests.support.imports import csv_bytes, finished, upload, xls_bytes


@pytest.fixture
def settings(make_settings: SettingsFactory, tmp_path: Path) -> Settings:
    return make_settings(
        imports={
            "directory": str(tmp_path / "imports"),
            "batch_size": 200,
            "progress_interval_seconds": 0.2,
            "lease_seconds": 1.0,
            "resume_scan_seconds": 0.2,
        }
    )


def workers() -> list[psutil.Process]:
    """The import workers: the forkserver's children (the forkserver is ours)."""
    me = os.getpid()
    return [p for p in psutil.Process(me).children(recursive=True) if p.ppid() != me]


async def running_workers() -> list[psutil.Process]:
    for _ in range(1000):
        if found := workers():
            return found
        await asyncio.sleep(0.02)
    raise AssertionError("no import worker started")


async def test_a_worker_that_dies_fails_its_import_with_the_reason(api: Api) -> None:
    admin = await api.tenant()
    agent = await api.user(admin, Role.SENIOR_AGENT)
    rows = [["Name", "Mobile"]] + [[f"C {n}", f"5{n:09d}"] for n in range(60_000)]
    _, body = await upload(api, agent, "big.csv", csv_bytes(rows))
    found = await running_workers()
    for worker in found:
        worker.send_signal(signal.SIGKILL)
    result = await finished(api, agent, body["data"]["import_id"], within=30)
    assert result["status"] == "failed"
    assert result["error"] == "the import's worker process stopped unexpectedly (signal 9)"
    assert result["processed"] < 60_000


async def test_an_import_keeps_its_lease_while_its_worker_says_nothing(api: Api) -> None:
    """As while an xls or ods loads whole: the worker sends nothing for longer than the lease
    (here: it is stopped), and the import stays this instance's."""
    admin = await api.tenant()
    agent = await api.user(admin, Role.SENIOR_AGENT)
    count = 20_000
    rows = [["Name", "Mobile", "Email"]] + [
        [f"Customer {n}", f"9{n:09d}", f"c{n}@example.com"] for n in range(count)
    ]
    _, body = await upload(api, agent, "big.xls", xls_bytes(rows))
    import_id = uuid.UUID(body["data"]["import_id"])
    found = await running_workers()
    for worker in found:
        worker.send_signal(signal.SIGSTOP)
    try:
        states = [await lease_of(api, import_id)]
        for _ in range(30):  # three leases
            await asyncio.sleep(0.1)
            states.append(await lease_of(api, import_id))
    finally:
        for worker in found:
            worker.send_signal(signal.SIGCONT)
    assert {status for status, *_ in states} <= {"queued", "parsing", "validating", "writing"}
    assert len({owner for _, owner, *_ in states}) == 1
    # Each read: the lease ran on past the moment of the read.
    assert all(until is not None and until > seen for _, _, until, seen in states)
    result = await finished(api, agent, str(import_id))
    assert (result["status"], result["created"]) == ("completed", count)


async def lease_of(
    api: Api, import_id: uuid.UUID
) -> tuple[str, str | None, datetime | None, datetime]:
    """(status, lease owner, lease end, when it was read)"""
    seen = utcnow()
    async with api.app[DATABASE].session(Scope.system()) as session:
        status, owner, until = (
            await session.execute(
                select(ImportJob.status, ImportJob.lease_owner, ImportJob.lease_until).where(
                    ImportJob.id == import_id
                )
            )
        ).one()
    return status, owner, until, seen
