"""Benchmark of Mitra's REST hot paths against a FastAPI + SQLAlchemy twin and a bare ceiling.

Run from the repository root: `python -m bench.rest_bench` (`make bench-rest`; about 3 minutes).
For each database (SQLite, then PostgreSQL in a private database created and dropped by the run;
`--database sqlite|postgres|both`) it seeds a realistic book through Mitra's own services (a few
hundred customers and policies across three agents, conversations with messages, one agent's
access token), then runs each server as its own process on 127.0.0.1 and drives it with wrk
(another process; 2 threads, 32 connections, 10 s per figure after a short warm-up):

- `mitra serve`: GET /api/v1/policies?limit=20, GET /api/v1/policies/{id},
  GET /api/v1/conversations, POST /api/v1/conversations/{id}/messages (a fresh client_msg_id
  per request, bench/rest_wrk.lua);
- the bare ceiling (bench/rest_bare.py): the bytes of Mitra's GET /policies from memory;
- the twin (bench/fastapi_twin.py): GET /policies on FastAPI + SQLAlchemy ORM under uvicorn.

It prints requests/s, p50/p99 latency, server CPU per request (process CPU seconds / requests:
robust when other work shares the cores), SQL statements per request (Mitra's
`mitra_db_statements_total{purpose="http"}`, the twin's own count), each as a ratio to the twin
and to the bare ceiling, and a pass/miss line per database for the targets: Mitra's
GET /policies at least 1x the twin's requests/s, with p99 under 50 ms. Then one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]
from sqlalchemy import text
from sqlalchemy.engine import make_url

from mitra import migrate
from mitra.accounts import AccountService, NewUser
from mitra.auth import AuthService, LogNotifier, PasswordHasher, TokenCodec
from mitra.auth.service import ClientInfo, TokenPair
from mitra.chat import ConversationService
from mitra.customers import CustomerData, CustomerService
from mitra.db import Database, Scope
from mitra.models import Message, PolicyStatus, PolicyType, PremiumFrequency, Role
from mitra.policies import PolicyData, PolicyService
from mitra.settings import DEV_JWT_SECRET, load_settings
from tests.support.databases import run_outside_transaction

ROOT = Path(__file__).resolve().parent.parent
LUA = ROOT / "bench" / "rest_wrk.lua"
PASSWORD = "bench passphrase 42"  # noqa: S105 - a throwaway account in a temporary database
DEFAULT_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
HTTP_STATEMENTS = re.compile(r'^mitra_db_statements_total\{purpose="http"\} ([0-9.e+]+)$', re.M)
TARGET_P99_MS = 50.0


# ---- the book --------------------------------------------------------------------------------


@dataclass
class Book:
    token: str
    policy_id: str
    conversation_id: str
    policies: int
    agent_policies: int


def server_env(database_url: str) -> dict[str, str]:
    """The MITRA_* settings of the benchmarked server, and of the seeding that shares its DB."""
    return {
        "MITRA_DATABASE_URL": database_url,
        "MITRA_SERVER_SEED_DEMO": "false",
        # Production's log level and format: one JSON line per request, to the log file.
        "MITRA_LOGGING_LEVEL": "INFO",
        "MITRA_LOGGING_FORMAT": "json",
        "MITRA_AUTH_ARGON2_TIME_COST": "1",
        "MITRA_AUTH_ARGON2_MEMORY_KIB": "8",
        "MITRA_AUTH_ARGON2_PARALLELISM": "1",
        "MITRA_AUTH_ACCESS_TOKEN_TTL_SECONDS": "7200",
        # POST /messages in a loop from 32 connections: the chat rate limit is not measured.
        "MITRA_CHAT_RATE_LIMIT_MESSAGES": "100000000",
    }


async def seed(env: dict[str, str], customers: int, policies: int, seed_value: int) -> Book:
    """Tenant, three agents (the benchmarked one holds half the book), customers, policies,
    20 of the agent's conversations with a few messages each; the agent's access token."""
    settings = load_settings(environ=env)
    database = Database(settings.database)
    rng = random.Random(seed_value)  # noqa: S311 - a reproducible book, not a secret
    try:
        await migrate.upgrade(database)
        hasher = PasswordHasher(settings.auth)
        accounts = AccountService(database, settings.auth, hasher)
        auth = AuthService(
            database,
            settings.auth,
            hasher,
            TokenCodec(settings.auth),
            LogNotifier(production=False),
        )
        people = CustomerService(database)
        book = PolicyService(database)
        chats = ConversationService(database)
        await accounts.create_tenant(
            "bench",
            "Benchmark agency",
            NewUser("admin@bench.example.com", PASSWORD, "Bench", "Admin", Role.SUPER_ADMIN),
        )
        admin = await _login(auth, "admin@bench.example.com")
        agents = []
        for n in range(3):
            email = f"agent{n}@bench.example.com"
            await accounts.create_user_in(
                "bench", NewUser(email, PASSWORD, "Agent", str(n), Role.SENIOR_AGENT)
            )
            agents.append(email)
        tokens = [await _login(auth, email) for email in agents]
        principals = [await auth.authenticate(token) for token in tokens]
        admin_principal = await auth.authenticate(admin)
        made_customers: list[tuple[int, uuid.UUID]] = []
        for n in range(customers):
            owner = 0 if n % 2 == 0 else 1 + (n // 2) % 2
            customer = await people.create(
                admin_principal,
                CustomerData(
                    full_name=f"Customer {n:04d} {rng.choice(['Sharma', 'Iyer', 'Khan', 'Das'])}",
                    phone=f"+9198{rng.randrange(10**8):08d}",
                    email=f"customer{n}@example.com",
                    agent_id=principals[owner].user_id,
                ),
            )
            made_customers.append((owner, customer.id))
        today = date.today()
        first_policy = None
        agent_policies = 0
        for n in range(policies):
            owner, customer_id = made_customers[n % len(made_customers)]
            start = today - timedelta(days=rng.randrange(30, 3000))
            policy = await book.create(
                admin_principal,
                PolicyData(
                    policy_number=f"LIC-{n:06d}",
                    customer_id=customer_id,
                    policy_type=rng.choice(list(PolicyType)),
                    plan_name=rng.choice(["Jeevan Anand", "Tech Term", "Jeevan Labh"]),
                    sum_assured=Decimal(rng.randrange(1, 100) * 50_000),
                    premium_amount=Decimal(rng.randrange(100_000, 5_000_000)) / 100,
                    premium_frequency=rng.choice(list(PremiumFrequency)),
                    start_date=start,
                    maturity_date=start + timedelta(days=365 * 20),
                    next_due_date=today + timedelta(days=rng.randrange(0, 90)),
                    status=PolicyStatus.ACTIVE,
                    agent_id=principals[owner].user_id,
                ),
            )
            if owner == 0:
                agent_policies += 1
                first_policy = first_policy or policy.id
        assert first_policy is not None
        agent = principals[0]
        conversation_ids = []
        for _owner, customer_id in [c for c in made_customers if c[0] == 0][:20]:
            summary, _ = await chats.open_with_customer(agent, customer_id)
            conversation_ids.append(summary.id)
        async with database.transaction(Scope.tenant(agent.tenant_id)) as session:
            now = datetime.now(UTC)
            for conversation_id in conversation_ids:
                for seq in range(1, 6):
                    session.add(
                        Message(
                            tenant_id=agent.tenant_id,
                            conversation_id=conversation_id,
                            seq=seq,
                            sender_id=agent.user_id,
                            client_msg_id=f"seed-{seq}",
                            body=f"Your premium is due soon ({seq})",
                            channel="app",
                            sent_at=now - timedelta(minutes=60 - seq),
                        )
                    )
        # A live database has planner statistics; a freshly seeded one has none until autovacuum
        # comes by, and PostgreSQL's generic plans for prepared statements are then nested
        # loops (17 ms instead of 0.7 ms for the listing, for Mitra and the twin alike).
        async with database.engine.connect() as connection:
            await connection.execute(text("ANALYZE"))
            await connection.commit()
        return Book(
            token=tokens[0],
            policy_id=str(first_policy),
            conversation_id=str(conversation_ids[0]),
            policies=policies,
            agent_policies=agent_policies,
        )
    finally:
        await database.dispose()


async def _login(auth: AuthService, email: str) -> str:
    pair = await auth.login(email, PASSWORD, ClientInfo(ip="127.0.0.1", user_agent="rest-bench"))
    assert isinstance(pair, TokenPair)
    return pair.access_token


async def create_postgres(base: str) -> str:
    name = f"mitra_bench_{uuid.uuid4().hex[:10]}"
    await run_outside_transaction(f'CREATE DATABASE "{name}"', base)
    return make_url(base).set(database=name).render_as_string(hide_password=False)


async def drop_postgres(base: str, url: str) -> None:
    await run_outside_transaction(
        f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)', base
    )


# ---- servers -----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    """One benchmarked server as its own process."""

    def __init__(self, kind: str, command: list[str], workdir: Path, env: dict[str, str]) -> None:
        self.kind = kind
        self.port = _free_port()
        self.log_path = workdir / f"{kind}-{self.port}.log"
        command = [part.replace("{port}", str(self.port)) for part in command]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and entry points
                command,
                cwd=workdir if kind == "mitra" else ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT), **env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.ps = psutil.Process(self.proc.pid)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited:\n{self.log_tail()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.kind} not listening after {timeout:.0f} s")

    def wait_quiet(self, limit: float = 60.0) -> float:
        """Wait until the server idles (under 5% of a core for a second): a fresh Mitra first
        publishes the seeding's outbox rows and folds them into analytics, which is not what a
        figure should count. Returns the seconds waited."""
        started = time.monotonic()
        while time.monotonic() - started < limit:
            before = self.cpu_seconds()
            time.sleep(1.0)
            if self.cpu_seconds() - before < 0.05:
                break
        return time.monotonic() - started

    def cpu_seconds(self) -> float:
        try:
            times = self.ps.cpu_times()
        except psutil.Error:
            return 0.0
        return float(times.user + times.system)

    def get(self, path: str, token: str | None = None) -> bytes:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        request = urllib.request.Request(self.url + path, headers=headers)  # noqa: S310
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
            return bytes(answer.read())

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


# ---- one figure ----------------------------------------------------------------------------------


@dataclass
class Figure:
    server: str
    name: str
    rps: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    cpu_ms: float = 0.0
    statements: float | None = None
    requests: int = 0
    errors: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def wrk(
    url: str, token: str | None, args: argparse.Namespace, seconds: float, *, send: bool
) -> dict[str, Any]:
    command = [
        "wrk",
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{seconds:g}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA),
    ]
    if token:
        command += ["-H", f"Authorization: Bearer {token}"]
    env = {**os.environ, **({"MITRA_WRK_SEND": "1"} if send else {})}
    out = subprocess.run(  # noqa: S603 - wrk from PATH, on loopback only
        [*command, url], capture_output=True, text=True, env=env, check=True, timeout=seconds + 60
    ).stdout
    for line in out.splitlines():
        if line.startswith("WRKJSON "):
            return dict(json.loads(line[len("WRKJSON ") :]))
    raise RuntimeError(f"wrk printed no figures:\n{out}")


def measure(
    server: Server,
    name: str,
    path: str,
    token: str | None,
    args: argparse.Namespace,
    *,
    send: bool = False,
    statements: Any = None,
) -> Figure:
    wrk(server.url + path, token, args, args.warmup, send=send)
    before_statements = statements() if statements else None
    before_cpu = server.cpu_seconds()
    result = wrk(server.url + path, token, args, args.seconds, send=send)
    cpu = server.cpu_seconds() - before_cpu
    requests = int(result["requests"])
    figure = Figure(
        server=server.kind,
        name=name,
        rps=requests / (result["duration_us"] / 1e6),
        p50_ms=result["p50_us"] / 1000,
        p99_ms=result["p99_us"] / 1000,
        cpu_ms=cpu / requests * 1000 if requests else 0.0,
        requests=requests,
        errors=int(result["errors"]),
    )
    if statements and requests:
        figure.statements = (statements() - before_statements) / requests
    return figure


def mitra_statements(server: Server) -> float:
    found = HTTP_STATEMENTS.search(server.get("/metrics").decode())
    return float(found.group(1)) if found else 0.0


def twin_statements(server: Server) -> float:
    return float(json.loads(server.get("/_bench/statements"))["statements"])


# ---- one database --------------------------------------------------------------------------------


def run_database(kind: str, args: argparse.Namespace, workdir: Path) -> list[Figure]:
    base = args.postgres_url
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
    else:
        url = asyncio.run(create_postgres(base))
    try:
        env = server_env(url)
        started = time.monotonic()
        book = asyncio.run(seed(env, args.customers, args.policies, args.seed))
        print(
            f"[{kind}] seeded {args.customers} customers, {book.policies} policies "
            f"({book.agent_policies} in the agent's book) in {time.monotonic() - started:.1f} s",
            flush=True,
        )
        return _drive(kind, url, env, book, args, workdir=workdir)
    finally:
        if kind == "postgres":
            asyncio.run(drop_postgres(base, url))


def _drive(
    kind: str, url: str, env: dict[str, str], book: Book, args: argparse.Namespace, *, workdir: Path
) -> list[Figure]:
    figures: list[Figure] = []
    policies = "/api/v1/policies?limit=20"
    # `--server-root` serves another checkout's code (e.g. main's, for a before/after figure)
    # with the same seeding, load and report.
    root = str(args.server_root or ROOT)
    mitra = Server(
        "mitra",
        [sys.executable, "-m", "handlers.cli", "serve", "--host", "127.0.0.1", "--port", "{port}"],
        workdir,
        {**env, "PYTHONPATH": root},
    )
    body_file = workdir / f"policies-{kind}.json"
    try:
        mitra.wait_ready()
        waited = mitra.wait_quiet()
        print(f"[{kind}] mitra quiet after {waited:.0f} s", flush=True)
        body_file.write_bytes(mitra.get(policies, book.token))
        count = lambda: mitra_statements(mitra)  # noqa: E731
        for name, path, send in (
            ("GET /policies?limit=20", policies, False),
            ("GET /policies/{id}", f"/api/v1/policies/{book.policy_id}", False),
            ("GET /conversations", "/api/v1/conversations", False),
            (
                "POST /conversations/{id}/messages",
                f"/api/v1/conversations/{book.conversation_id}/messages",
                True,
            ),
        ):
            figure = measure(mitra, name, path, book.token, args, send=send, statements=count)
            figures.append(figure)
            _progress(kind, figure)
    finally:
        mitra.stop()
    bare = Server(
        "bare",
        [sys.executable, "-m", "bench.rest_bare", "--port", "{port}", "--body", str(body_file)],
        workdir,
        {},
    )
    try:
        bare.wait_ready()
        figure = measure(bare, "GET /policies?limit=20", policies, None, args)
        figures.append(figure)
        _progress(kind, figure)
    finally:
        bare.stop()
    twin = Server(
        "twin",
        [
            sys.executable,
            "-m",
            "bench.fastapi_twin",
            "--port",
            "{port}",
            "--database-url",
            url,
            "--jwt-secret",
            DEV_JWT_SECRET,
        ],
        workdir,
        {},
    )
    try:
        twin.wait_ready()
        same = json.loads(twin.get(policies, book.token))["data"]["pagination"]
        mine = json.loads(body_file.read_bytes())["data"]["pagination"]
        if same != mine:
            print(f"[{kind}] warning: the twin's pagination {same} differs from Mitra's {mine}")
        figure = measure(
            twin,
            "GET /policies?limit=20",
            policies,
            book.token,
            args,
            statements=lambda: twin_statements(twin),
        )
        figures.append(figure)
        _progress(kind, figure)
    finally:
        twin.stop()
    return figures


def _progress(kind: str, figure: Figure) -> None:
    print(
        f"[{kind}] {figure.server:5} {figure.name:34} {figure.rps:8.0f} req/s "
        f"p99 {figure.p99_ms:7.1f} ms  cpu {figure.cpu_ms:.2f} ms/req  errors {figure.errors}",
        flush=True,
    )


# ---- the report ----------------------------------------------------------------------------------


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or not b:
        return "-"
    return f"{a / b:.2f}x"


def report(kind: str, figures: list[Figure]) -> list[str]:
    twin = next(f for f in figures if f.server == "twin")
    bare = next(f for f in figures if f.server == "bare")
    lines = [
        f"== {kind} ==",
        f"{'server':6} {'request':34} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'cpu ms':>7} "
        f"{'stmts':>5} | {'rps/twin':>8} {'rps/bare':>8} {'p99/twin':>8} {'cpu/twin':>8} "
        f"{'cpu/bare':>8} {'err':>4}",
    ]
    for f in figures:
        statements = f"{f.statements:.2f}" if f.statements is not None else "-"
        lines.append(
            f"{f.server:6} {f.name:34} {f.rps:8.0f} {f.p50_ms:7.1f} {f.p99_ms:7.1f} "
            f"{f.cpu_ms:7.2f} {statements:>5} | {_ratio(f.rps, twin.rps):>8} "
            f"{_ratio(f.rps, bare.rps):>8} {_ratio(f.p99_ms, twin.p99_ms):>8} "
            f"{_ratio(f.cpu_ms, twin.cpu_ms):>8} {_ratio(f.cpu_ms, bare.cpu_ms):>8} {f.errors:4}"
        )
    mine = next(f for f in figures if f.server == "mitra" and f.name.startswith("GET /policies?"))
    fast_enough = mine.rps >= twin.rps
    tail_ok = mine.p99_ms < TARGET_P99_MS
    verdict = "PASS" if fast_enough and tail_ok else "MISS"
    lines.append(
        f"{verdict} [{kind}] GET /policies?limit=20: {mine.rps:.0f} req/s = "
        f"{mine.rps / twin.rps:.2f}x the twin's {twin.rps:.0f} (target >= 1x: "
        f"{'met' if fast_enough else 'missed'}); p99 {mine.p99_ms:.1f} ms (target < "
        f"{TARGET_P99_MS:.0f} ms: {'met' if tail_ok else 'missed'})"
    )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument(
        "--postgres-url", default=os.environ.get("MITRA_BENCH_POSTGRES_URL", DEFAULT_POSTGRES)
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="per figure")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before each figure")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--customers", type=int, default=300)
    parser.add_argument("--policies", type=int, default=600)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    parser.add_argument(
        "--server-root", type=Path, help="serve Mitra from this checkout (default: this one)"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("rest_bench: wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    kinds = ["sqlite", "postgres"] if args.database == "both" else [args.database]
    workdir = Path(tempfile.mkdtemp(prefix="mitra-rest-bench-"))
    results: dict[str, list[Figure]] = {}
    lines: list[str] = []
    try:
        for kind in kinds:
            (workdir / kind).mkdir()
            results[kind] = run_database(kind, args, workdir / kind)
            lines += report(kind, results[kind])
    finally:
        if args.keep:
            print(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print()
    print("\n".join(lines))
    print(
        json.dumps(
            {kind: [vars(f) for f in figures] for kind, figures in results.items()},
            default=str,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
