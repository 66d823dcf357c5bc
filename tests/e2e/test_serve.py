"""`mitra serve` as `make run` starts it: a real process on loopback with the embedded defaults."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

pytestmark = pytest.mark.slow
REPO_ROOT = str(Path(__file__).resolve().parents[2])
SERVING = re.compile(r"Mitra is serving on http://127\.0\.0\.1:(\d+)$")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve_env(**settings: str) -> dict[str, str]:
    """This process's environment without its MITRA_* variables, plus `settings`."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MITRA_")}
    return {**environ, "PYTHONPATH": REPO_ROOT, **settings}


@asynccontextmanager
async def running(
    command: Sequence[str], cwd: Path, env: dict[str, str]
) -> AsyncIterator[asyncio.subprocess.Process]:
    """The process, stopped with SIGINT (to its whole group: `make` and its child) at the end.

    stderr goes to `cwd/stderr.log`, a file rather than a pipe, so a chatty log level can never
    fill a pipe nobody reads and stall the server.
    """
    with (cwd / "stderr.log").open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            *command,
            cwd=cwd,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            start_new_session=True,
        )
        try:
            yield process
        finally:
            if process.returncode is None:
                os.killpg(process.pid, signal.SIGINT)
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                os.killpg(process.pid, signal.SIGKILL)
                raise


def mitra_serve(*args: str) -> list[str]:
    return [sys.executable, "-m", "handlers.cli", "serve", *args]


async def read_until(process: asyncio.subprocess.Process, last: str) -> list[str]:
    """stdout's lines up to and including the first that starts with `last`."""
    assert process.stdout is not None
    lines: list[str] = []
    while True:
        raw = await asyncio.wait_for(process.stdout.readline(), 60)
        if not raw:
            raise AssertionError(f"server exited early: {lines}")
        lines.append(raw.decode().rstrip())
        if lines[-1].startswith(last):
            return lines


async def test_first_start_serves_and_its_printed_login_works(tmp_path: Path) -> None:
    env = serve_env(MITRA_LOGGING_LEVEL="WARNING")
    # Port 0: the kernel picks a free port and the banner names it, so no other process can
    # take the port between choosing it and binding it.
    async with running(mitra_serve("--port", "0"), tmp_path, env) as process:
        banner = await read_until(process, "Try: curl")
        serving = SERVING.match(banner[0])
        assert serving is not None, banner[0]
        port = int(serving.group(1))
        assert port != 0
        # One attempt, no retry: whoever reads the banner can connect at once.
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.close()
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
    assert process.returncode == 0


async def test_a_busy_port_is_one_line_and_exit_2_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as occupant:
        occupant.bind(("127.0.0.1", 0))
        occupant.listen()
        port = occupant.getsockname()[1]
        async with running(mitra_serve("--port", str(port)), tmp_path, serve_env()) as process:
            assert process.stdout is not None
            stdout = await asyncio.wait_for(process.stdout.read(), 60)
            await process.wait()
    assert process.returncode == 2
    assert stdout == b""
    assert (tmp_path / "stderr.log").read_text().splitlines() == [
        f"mitra: cannot listen on 127.0.0.1:{port}: address already in use (another process is"
        " listening there; pick a port with --port, or make run PORT=)"
    ]
    # Refused before start-up: no database was created or migrated.
    assert not (tmp_path / "var").exists()


async def test_make_run_passes_port_through(tmp_path: Path) -> None:
    env = serve_env(
        MITRA_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'make.db'}",
        MITRA_SERVER_SEED_DEMO="false",
        MITRA_LOGGING_LEVEL="WARNING",
    )
    # PORT=0 rather than a fixed port: if make dropped PORT, serve would bind 8080 and the
    # banner would say so (or fail on a busy 8080); either way the assertion below fails.
    command = ["make", "--no-print-directory", "-s", "-C", REPO_ROOT, "run", "PORT=0"]
    async with running(command, tmp_path, env) as process:
        (line,) = await read_until(process, "Mitra is serving")
        serving = SERVING.match(line)
        assert serving is not None, line
        port = int(serving.group(1))
        assert port not in (0, 8080)
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{port}/health") as response,
        ):
            assert response.status == 200


PRODUCTION = {
    "MITRA_SERVER_ENV": "production",
    "MITRA_SERVER_SEED_DEMO": "false",
    "MITRA_SERVER_ALLOWED_HOSTS": "127.0.0.1",
    "MITRA_AUTH_JWT_SECRET": "an e2e test secret that is long enough",
    "MITRA_INTEGRATIONS_SECRETS_KEY": base64.b64encode(b"e2e-key-" * 4).decode(),
    "MITRA_METRICS_TOKEN": "an e2e metrics token that is long enough",
    "MITRA_NOTIFIER_BACKEND": "deliver",
    "MITRA_NOTIFIER_SMS_AUTH_KEY": "gateway-key",
    "MITRA_NOTIFIER_SMS_TEMPLATE_ID": "otp-template",
}


@pytest.mark.parametrize("env", ["development", "production"])
async def test_console_logs_are_text_in_development_and_json_in_production(
    tmp_path: Path, env: str
) -> None:
    settings = {"MITRA_LOGGING_LEVEL": "INFO", "MITRA_SERVER_SEED_DEMO": "false"}
    if env == "production":
        settings |= PRODUCTION
    async with running(mitra_serve("--port", "0"), tmp_path, serve_env(**settings)) as process:
        await read_until(process, "Mitra is serving")
    assert process.returncode == 0
    lines = (tmp_path / "stderr.log").read_text().splitlines()
    assert lines, "INFO start-up logged nothing"
    as_json = [line.startswith("{") and line.endswith("}") for line in lines]
    if env == "production":
        assert all(as_json), lines
    else:
        assert not any(as_json), lines
        # asctime, level, logger: what a developer reads in a terminal.
        assert any(re.match(r"\d{4}-\d\d-\d\d [\d:,]+ INFO mitra\.", line) for line in lines)
        # ... once: the time is not repeated as a field at the end.
        assert not any("asctime=" in line for line in lines), lines
