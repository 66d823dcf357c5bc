"""Browser fixtures: Debian's Chromium driven by Playwright, against a real `mitra serve`.

Without a Chromium (or Playwright) the tests skip with the reason shown; under `CI=true` they
fail instead (`.ci/run` installs the `chromium` package when it is missing).
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.databases import in_ci
from tests.support.payments import Gateways, gateways_in_thread

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("MITRA_TEST_CHROMIUM", "/usr/bin/chromium")
# Without these Chromium keeps reaching for Google's services, which a closed network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SERVING = re.compile(r"Mitra is serving on (http://127\.0\.0\.1:\d+)$")
LOGIN = re.compile(r"^\s+(\w+)\s+(\S+)\s+/\s+(\S+)$")


def _unavailable(reason: str) -> None:
    if in_ci():
        pytest.fail(f"{reason}; CI=true requires the browser tests to run", pytrace=False)
    pytest.skip(reason)


@dataclass
class Server:
    """A running `mitra serve`: its address, the demo logins it printed, its log file, and the
    payment gateways' fakes its SDKs reach."""

    base: str
    logins: dict[str, tuple[str, str]]  # role -> (email, password)
    log: Path
    gateways: Gateways

    def api(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        request = urllib.request.Request(  # noqa: S310 - the test's own loopback server
            f"{self.base}/api/v1{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json"}
            | ({"Authorization": f"Bearer {token}"} if token else {}),
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                return json.loads(response.read())["data"]
        except urllib.error.HTTPError as error:
            raise AssertionError(f"{method} {path}: {error.code} {error.read()!r}") from None

    def status(self, method: str, path: str, token: str) -> int:
        """Only the status of a call (a refusal is an answer here, not a failure)."""
        try:
            self.api(method, path, token=token)
        except AssertionError as refused:
            return int(str(refused).split(": ")[1].split(" ")[0])
        return 200

    def token(self, email: str, password: str) -> str:
        data = self.api("POST", "/auth/login", {"identifier": email, "password": password})
        return str(data["access_token"])


@pytest.fixture(scope="module")
def gateways() -> Iterator[Gateways]:
    """Razorpay's and Stripe's fakes, for the server's SDKs (a test sets the demo agency's keys
    up to use them)."""
    with gateways_in_thread() as served:
        yield served


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, gateways: Gateways) -> Iterator[Server]:
    """One server for a module's tests (start-up and seeding cost seconds), demo book seeded."""
    workdir = tmp_path_factory.mktemp("console-server")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MITRA_")}
    environ |= {
        "PYTHONPATH": str(REPO_ROOT),
        "MITRA_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'mitra.db'}",
        # INFO: the log notifier's lines (with the sign-in code, in development) are kept.
        "MITRA_LOGGING_LEVEL": "INFO",
        # The history test posts a long conversation at once.
        "MITRA_CHAT_RATE_LIMIT_MESSAGES": "1000",
        "MITRA_PAYMENTS_RAZORPAY_BASE_URL": gateways.razorpay_url,
        "MITRA_PAYMENTS_STRIPE_BASE_URL": gateways.stripe_url,
    }
    log = workdir / "stderr.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "handlers.cli", "serve", "--port", "0"],
            cwd=workdir,
            env=environ,
            stdout=subprocess.PIPE,
            # Unbuffered: `select` then sees every line still unread, none held in a buffer.
            bufsize=0,
            stderr=stderr,
            start_new_session=True,
        )
    try:
        lines = _banner(process)
        serving = SERVING.match(lines[0])
        assert serving is not None, lines
        logins = {m[1]: (m[2], m[3]) for m in map(LOGIN.match, lines) if m}
        yield Server(serving.group(1), logins, log, gateways)
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            raise


def _banner(process: subprocess.Popen[bytes]) -> list[str]:
    assert process.stdout is not None
    deadline = time.monotonic() + 90
    lines: list[str] = []
    while not lines or not lines[-1].startswith("Try: curl"):
        left = deadline - time.monotonic()
        ready, _, _ = select.select([process.stdout], [], [], max(left, 0))
        if not ready:
            raise AssertionError(f"no banner from the server: {lines}")
        raw = process.stdout.readline()
        if not raw:
            raise AssertionError(f"server exited early: {lines}")
        lines.append(raw.decode().rstrip())
    return lines


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (the test extra)")
    if not Path(CHROMIUM).is_file():
        _unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """Where the run's screenshots go: `var/screenshots` of the checkout (git-ignored)."""
    folder = Path(os.environ.get("MITRA_TEST_SCREENSHOTS", REPO_ROOT / "var" / "screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder
