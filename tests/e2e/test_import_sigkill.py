"""SIGKILL of a server in the middle of an import, then a restart: the import resumes from its
last committed batch and ends with every row written exactly once, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.test_serve import serve_env
from tests.e2e.test_sigkill import database_env, login, start
from tests.support.imports import csv_bytes

pytestmark = pytest.mark.slow
__all__ = ["database_env"]
ROWS = 6_000


async def progress(http: aiohttp.ClientSession, base: str, token: str, import_id: str) -> Any:
    async with http.get(
        f"{base}/api/v1/imports/{import_id}", headers={"Authorization": f"Bearer {token}"}
    ) as response:
        assert response.status == 200, await response.text()
        return (await response.json())["data"]


async def until(
    http: aiohttp.ClientSession, base: str, token: str, import_id: str, *, done: Any
) -> Any:
    """The import's state once `done(state)`; polled, as a client without a socket would."""
    async with asyncio.timeout(90):
        while True:
            state = await progress(http, base, token, import_id)
            if done(state):
                return state
            await asyncio.sleep(0.05)


async def test_an_import_killed_mid_way_resumes_without_duplicates_or_losses(
    tmp_path: Path, database_env: dict[str, str]
) -> None:
    env = serve_env(
        MITRA_LOGGING_LEVEL="WARNING",
        MITRA_IMPORTS_BATCH_SIZE="100",
        MITRA_IMPORTS_LEASE_SECONDS="2",
        MITRA_IMPORTS_RESUME_SCAN_SECONDS="0.5",
        # The counts below are of the whole book: the demo's own 20 customers would be in them.
        MITRA_DEMO_SEED_BOOK="false",
        **database_env,
    )
    rows: list[list[Any]] = [["Customer Name", "Mobile", "Policy No", "Plan Type", "Plan",
                              "Sum Assured", "Premium", "Mode", "Start Date"]]  # fmt: skip
    for n in range(ROWS):
        rows.append([f"Customer {n}", f"7{n:09d}", f"P-{n:06d}", "term", "Term", "100000",
                     "1200", "yearly", "01/04/2024"])  # fmt: skip
    (context, process), base, accounts = await start(tmp_path, env)
    async with aiohttp.ClientSession() as http:
        agent = await login(http, base, accounts["senior_agent"])
        form = aiohttp.FormData()
        form.add_field("import_type", "customers_and_policies")
        form.add_field("file", csv_bytes(rows), filename="book.csv")
        async with http.post(
            f"{base}/api/v1/imports", data=form, headers={"Authorization": f"Bearer {agent}"}
        ) as response:
            assert response.status == 202, await response.text()
            import_id = (await response.json())["data"]["import_id"]
        before = await until(http, base, agent, import_id, done=lambda s: s["processed"] >= 1000)
        os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        await context.__aexit__(None, None, None)
    assert before["processed"] < ROWS, "the import was over before the kill"

    (context, process), base, accounts = await start(tmp_path, env)
    try:
        async with aiohttp.ClientSession() as http:
            agent = await login(http, base, accounts["senior_agent"])
            final = await until(
                http, base, agent, import_id, done=lambda s: s["status"] not in RUNNING
            )
            assert final["status"] == "completed", final
            assert (final["total"], final["processed"], final["created"]) == (ROWS, ROWS, ROWS)
            assert (final["updated"], final["unchanged"], final["failed"]) == (0, 0, 0)
            headers = {"Authorization": f"Bearer {agent}"}
            for kind in ("customers", "policies"):
                async with http.get(f"{base}/api/v1/{kind}?limit=1", headers=headers) as response:
                    total = (await response.json())["data"]["pagination"]["total"]
                assert total == ROWS, f"{kind}: {total} stored for {ROWS} rows"
    finally:
        await context.__aexit__(None, None, None)


RUNNING = {"queued", "parsing", "validating", "writing"}
