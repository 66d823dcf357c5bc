"""`mitra serve` as `make run` starts it: a real process on loopback with the embedded defaults."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
from pathlib import Path

import aiohttp
import pytest

pytestmark = pytest.mark.slow
REPO_ROOT = str(Path(__file__).resolve().parents[2])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _read_banner(process: asyncio.subprocess.Process) -> list[str]:
    assert process.stdout is not None
    lines: list[str] = []
    while True:
        raw = await asyncio.wait_for(process.stdout.readline(), 60)
        if not raw:
            raise AssertionError(f"server exited early: {lines}")
        line = raw.decode().rstrip()
        lines.append(line)
        if line.startswith("Try: curl"):
            return lines


async def test_first_start_serves_and_its_printed_login_works(tmp_path: Path) -> None:
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MITRA_")}
    environ["MITRA_LOGGING_LEVEL"] = "WARNING"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "handlers.cli",
        "serve",
        "--port",
        str(port),
        cwd=tmp_path,
        env={**environ, "PYTHONPATH": REPO_ROOT},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        banner = await _read_banner(process)
        assert banner[0] == f"Mitra is serving on http://127.0.0.1:{port}"
        admin = re.search(r"super_admin\s+(\S+)\s+/\s+(\S+)", "\n".join(banner))
        assert admin is not None
        email, password = admin.groups()
        assert (tmp_path / "var" / "mitra.db").exists()

        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"{base}/api/v1/auth/login", json={"identifier": email, "password": password}
            ) as response:
                assert response.status == 200
                token = (await response.json())["data"]["access_token"]
            async with http.get(
                f"{base}/api/v1/users/me", headers={"Authorization": f"Bearer {token}"}
            ) as response:
                assert response.status == 200
                me = (await response.json())["data"]
            assert me["email"] == email
            assert me["role"] == "super_admin"
            async with http.get(f"{base}/ready") as response:
                assert response.status == 200
    finally:
        process.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(process.wait(), 30)
        except TimeoutError:
            process.kill()
            raise
    assert process.returncode == 0
