"""Benchmark of Mitra's real-time chat against a bare aiohttp WebSocket broadcast server.

Run from the repository root: `python -m bench.chat_bench` (about 14 minutes by default on two
shared cores, 4 of them making 13,000 users and sessions; every phase is bounded, and
`--budget-seconds` stops the run between runs). For each
socket count it runs the bare server (bench/bare_ws.py, the ceiling) once, then `mitra serve` on
each database asked for (`--database sqlite|postgres|both`: a SQLite file, and a private
PostgreSQL database created and migrated for the run and dropped after it), each as its own
process on 127.0.0.1, and drives them all with the same client processes (bench/chat_client.py):

1. connect: every socket connected, authenticated and joined, at sockets/s; then idle, the
   server's RSS;
2. latency: a fixed rate of sends spread over the conversations (open loop); send->delivered
   latency at every other member's socket, measured by the client;
3. saturation: each sending socket keeps a window of sends outstanding; message frames received
   per second across all sockets, and Mitra's figure as a ratio of the bare server's.

Around each load phase it scrapes Mitra's /metrics and counts the stored messages, and prints the
database commits and statements per accepted message (per row the phase added to `messages`),
overall and by purpose.

With `--two-instances` (the default), two `mitra serve` processes over one PostgreSQL database
and the tansu Kafka-protocol broker form one service; each conversation's members alternate
between the two, so most deliveries cross instances through `chat.events` and sends for
conversations the other instance owns are forwarded through `chat.commands`. That run has the
latency phase only, at `--two-instance-rate`, and reports the latency at the sockets of the
instance other than the sender's.

Prints (bench/chat_report.py) a table, the database work per message, the targets met or
MISSED, then one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import psutil  # type: ignore[import-untyped]
from sqlalchemy.engine import make_url

from bench.bare_ws import raise_open_files_limit
from bench.chat_client import ClientPool, SocketSpec
from bench.chat_report import (
    BACKLOG_LIMIT_SECONDS,
    FANOUT_METRIC,
    PHASES,
    Run,
    report,
)
from bench.chat_setup import (
    Group,
    count_messages,
    create_postgres_database,
    kafka_env,
    populate,
    postgres_database_url,
    server_env,
    socket_specs,
    sqlite_url,
)
from tests.streams._tansu import run_tansu
from tests.support.databases import drop_private_postgres, postgres_base_url

ROOT = Path(__file__).resolve().parent.parent
DB_METRICS = {"commits": "mitra_db_commits_total", "statements": "mitra_db_statements_total"}
FORWARDED_METRIC = "mitra_chat_forwarded_total"
CHAT_COUNTERS = (
    "mitra_chat_open_sockets",
    "mitra_chat_messages_in_total",
    "mitra_chat_messages_out_total",
    "mitra_chat_send_queue_overflows_total",
    FORWARDED_METRIC,
)
MIB = 1024 * 1024
PURPOSE = re.compile(r'purpose="([^"]*)"')


# ---- the server process ----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    """A benchmarked server as a real process; children inherit our raised RLIMIT_NOFILE."""

    def __init__(self, kind: str, workdir: Path, env: dict[str, str]) -> None:
        self.kind = kind
        self.port = _free_port()
        self.log_path = workdir / f"{kind}-{self.port}.log"
        if kind == "bare":
            command = [sys.executable, "-m", "bench.bare_ws", "--port", str(self.port)]
        else:
            mitra = str(Path(sys.executable).with_name("mitra"))
            command = [mitra, "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and entry point
                command,
                cwd=workdir if kind == "mitra" else ROOT,
                env={**os.environ, **env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.ps = psutil.Process(self.proc.pid)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float) -> None:
        """Listening (the bare server), or answering 200 on /ready (Mitra: every dependency)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} server exited: {self.log_tail()}")
            try:
                if self.kind == "bare":
                    socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                    return
                with urllib.request.urlopen(f"{self.url}/ready", timeout=2) as answer:  # noqa: S310
                    if answer.status == 200:
                        return
            except OSError:  # not listening yet, or 503 (urllib's HTTPError is an OSError)
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.kind} server not ready after {timeout:.0f} s")

    def rss(self) -> int:
        """Resident memory of the server and any process it started."""
        try:
            procs = [self.ps, *self.ps.children(recursive=True)]
            return sum(int(p.memory_info().rss) for p in procs)
        except psutil.Error:
            return 0

    def cpu_seconds(self) -> float:
        try:
            times = self.ps.cpu_times()
        except psutil.Error:
            return 0.0
        return float(times.user + times.system)

    def metrics(self) -> str | None:
        if self.kind != "mitra":
            return None
        try:
            with urllib.request.urlopen(f"{self.url}/metrics", timeout=5) as answer:  # noqa: S310
                return str(answer.read().decode())
        except OSError:
            return None

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # what run_app shuts down cleanly on
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class PeakRss:
    """Samples the server's RSS every 0.25 s on a thread, keeping the peak."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            self.peak = max(self.peak, self.server.rss())

    def close(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


# ---- /metrics ----------------------------------------------------------------------------------


def fanout_histogram(texts: list[str | None]) -> dict[str, float] | None:
    """The `mitra_chat_fanout_seconds` buckets (summed over labels and instances), _sum, _count."""
    if not any(text and FANOUT_METRIC in text for text in texts):
        return None
    found: dict[str, float] = {}
    for line in (line for text in texts for line in (text or "").splitlines()):
        if not line.startswith(FANOUT_METRIC):
            continue
        name, _, value = line.rpartition(" ")
        try:
            number = float(value)
        except ValueError:
            continue
        if name.startswith(FANOUT_METRIC + "_bucket"):
            le = name.split('le="', 1)[1].split('"', 1)[0]
            found["le:" + le] = found.get("le:" + le, 0.0) + number
        elif name.startswith((FANOUT_METRIC + "_sum", FANOUT_METRIC + "_count")):
            key = name.split("{", 1)[0].rsplit("_", 1)[1]
            found[key] = found.get(key, 0.0) + number
    return found


def counters(texts: list[str | None]) -> dict[str, float]:
    """The chat's plain samples (no labels), summed over instances: sockets, messages, ..."""
    found: dict[str, float] = {}
    for line in (line for text in texts for line in (text or "").splitlines()):
        name, _, value = line.partition(" ")
        name = name.removesuffix("{}")
        if name in CHAT_COUNTERS:
            found[name] = found.get(name, 0.0) + float(value)
    return found


def by_purpose(texts: list[str | None], metric: str) -> dict[str, float]:
    """`metric{purpose="..."}` by purpose, summed over instances (a purpose never seen is 0)."""
    found: dict[str, float] = {}
    for line in (line for text in texts for line in (text or "").splitlines()):
        if not line.startswith(metric + "{"):
            continue
        purpose = PURPOSE.search(line)
        if purpose is None:
            continue
        value = float(line.rpartition(" ")[2])
        found[purpose.group(1)] = found.get(purpose.group(1), 0.0) + value
    return found


def histogram_delta(after: dict[str, float] | None, before: dict[str, float] | None) -> Any:
    """What the server observed between two scrapes: count, mean and bucket-bound quantiles."""
    if after is None:
        return None
    before = before or {}
    delta = {key: value - before.get(key, 0.0) for key, value in after.items()}
    count = delta.get("count", 0.0)
    buckets = sorted(
        ((float(key[3:]), value) for key, value in delta.items() if key.startswith("le:")),
        key=lambda item: item[0],
    )

    def bound(q: float) -> float | None:
        for upper, cumulative in buckets:
            if count and cumulative >= q * count:
                return upper * 1000
        return None

    finite = [upper for upper, _ in buckets if upper != float("inf")]
    return {
        "last_bucket_ms": finite[-1] * 1000 if finite else None,
        "count": int(count),
        "mean_ms": delta.get("sum", 0.0) / count * 1000 if count else None,
        "p50_le_ms": bound(0.5),
        "p99_le_ms": bound(0.99),
    }


@dataclass
class Snapshot:
    """Every instance's /metrics and the rows in `messages`, taken between phases."""

    texts: list[str | None]
    stored: tuple[int, int] | None  # rows in `messages`, and the writer's batches among them

    @classmethod
    def take(cls, servers: list[Server], database_url: str | None) -> Snapshot:
        texts = [server.metrics() for server in servers]
        stored = None
        if database_url is not None:
            try:
                stored = asyncio.run(count_messages(database_url))
            except Exception:  # a count that fails leaves the check out, not the run
                stored = None
        return cls(texts, stored)


def database_work(before: Snapshot, after: Snapshot, acked: int) -> dict[str, Any] | None:
    """Commits and statements made between two snapshots, in total, by purpose, per message.

    Per *accepted* message: the rows added to `messages` between the same two snapshots
    (`stored`), or the messages the client saw acked when the database cannot be counted. The
    two agree while the server keeps up; an overloaded one still commits sends after the client
    stopped waiting for their acks, or after it answered them with a timeout, and dividing its
    commits by the acks would count those commits against no message. `write_batches` (distinct
    commit stamps among the new rows) is the check on the `chat.write` commits.
    """
    if not any(after.texts):
        return None
    work: dict[str, Any] = {"acked": acked, "stored": None, "write_batches": None}
    if after.stored is not None and before.stored is not None:
        work["stored"] = after.stored[0] - before.stored[0]
        work["write_batches"] = after.stored[1] - before.stored[1]
    accepted = work["stored"] if work["stored"] is not None else acked
    work["accepted"] = accepted
    for kind, metric in DB_METRICS.items():
        was, now = by_purpose(before.texts, metric), by_purpose(after.texts, metric)
        delta = {purpose: now[purpose] - was.get(purpose, 0.0) for purpose in sorted(now)}
        delta = {"all": sum(delta.values()), **delta}
        work[kind] = delta
        work[f"{kind}_per_message"] = (
            {purpose: count / accepted for purpose, count in delta.items()} if accepted else None
        )
    return work


# ---- one run: one server (or two instances), one socket count ------------------------------------


def pct(samples: list[float], q: float) -> float | None:
    if not samples:
        return None
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def _quantiles(samples: list[float]) -> dict[str, float | None]:
    return {q: pct(samples, v) for q, v in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))} | {
        "max": max(samples, default=None)
    }


def merge(answers: list[dict[str, Any]], server_cpu: float, wall: float) -> dict[str, Any]:
    """One phase's answers from every worker, as figures."""
    latencies = [x for a in answers for x in a["latencies_ms"]]
    cross = [x for a in answers for x in a["cross_latencies_ms"]]
    acks = [x for a in answers for x in a["ack_ms"]]
    seconds = max(a["window_seconds"] for a in answers)
    errors: Counter[str] = Counter()
    close_codes: Counter[str] = Counter()
    for answer in answers:
        errors.update(answer["errors"])
        close_codes.update(answer["close_codes"])
    expected = sum(a["expected_to_others"] for a in answers)
    to_others = sum(a["delivered_to_others"] for a in answers)
    expected_cross = sum(a["expected_cross"] for a in answers)
    delivered_cross = sum(a["delivered_cross"] for a in answers)
    figures = {
        "seconds": seconds,
        "sent": sum(a["sent"] for a in answers),
        "acked": sum(a["acked"] for a in answers),
        "unacked": sum(a["unacked"] for a in answers),
        "acked_per_s": sum(a["acked"] for a in answers) / seconds,
        "delivered_per_s": sum(a["delivered"] for a in answers) / seconds,
        "delivered_to_others": to_others,
        "expected_to_others": expected,
        "completeness": to_others / expected if expected else None,
        "latency_ms": _quantiles(latencies),
        "ack_ms": {q: pct(acks, v) for q, v in (("p50", 0.5), ("p99", 0.99))},
        "errors": dict(errors),
        "client_cpu_pct": sum(a["cpu_seconds"] for a in answers) / seconds * 100,
        "server_cpu_pct": server_cpu / wall * 100 if wall else None,
        "closed_sockets": sum(a["closed_sockets"] for a in answers),
        "close_codes": dict(close_codes),
    }
    if expected_cross:  # several instances: the deliveries at another instance than the sender's
        figures |= {
            "expected_cross": expected_cross,
            "delivered_cross": delivered_cross,
            "cross_completeness": delivered_cross / expected_cross,
            "cross_latency_ms": _quantiles(cross),
        }
    return figures


@dataclass(frozen=True)
class Target:
    """What one run starts: the server kind, its settings and database, how many instances."""

    kind: str  # "bare" or "mitra"
    database: str  # "-" for the bare server
    env: dict[str, str]
    database_url: str | None  # where the stored messages are counted; None for the bare server
    instances: int = 1


def run_one(target: Target, groups: list[Group], workdir: Path, args: argparse.Namespace) -> Run:
    kind, instances = target.kind, target.instances
    specs = socket_specs(
        groups, bare=kind == "bare", senders_per_group=args.senders, instances=instances
    )
    run = Run(
        server=kind,
        database=target.database,
        instances=instances,
        sockets=len(specs),
        conversations=len(groups),
    )
    servers: list[Server] = []
    pool: ClientPool | None = None
    try:
        servers = [Server(kind, workdir, target.env) for _ in range(instances)]
        for server in servers:
            server.wait_ready(90)
        time.sleep(0.5)
        run.figures["rss_start_mib"] = max(server.rss() for server in servers) / MIB
        pool = ClientPool(args.workers, run=f"{kind}{target.database}{instances}x{len(specs)}")
        run.figures["client_pids"] = pool.pids
        _connect_and_idle(run, servers, pool, specs, args)
        if instances > 1:
            _wait_for_owners(run, servers, pool, args)
        rate = args.two_instance_rate if instances > 1 else args.rate
        _load(run, servers, pool, args, rate=rate, database_url=target.database_url)
    except Exception as exc:
        # One failed run is reported and the others still run: the table shows what was measured.
        run.problems.append(f"{type(exc).__name__}: {exc}")
    finally:
        for server in servers:
            if server.proc.poll() is not None:
                run.problems.append(
                    f"server :{server.port} exited with {server.proc.returncode} during the run"
                )
        closed = any(run.figures.get(phase, {}).get("closed_sockets") for phase in PHASES)
        for server in servers:
            tail = server.log_tail()
            if tail and (run.problems or closed):
                run.problems.append(f"server :{server.port} log tail:\n" + tail)
        if pool is not None:
            pool.close()
        for server in servers:
            server.stop()
    return run


def _connect_and_idle(
    run: Run,
    servers: list[Server],
    pool: ClientPool,
    specs: list[SocketSpec],
    args: argparse.Namespace,
) -> None:
    figures = run.figures
    started = time.monotonic()
    urls = [server.url + "/ws" for server in servers]
    answers = pool.connect(urls, specs, args.connect_batch, args.connect_timeout)
    figures["connect_seconds"] = time.monotonic() - started
    figures["connected"] = sum(a["connected"] for a in answers)
    figures["connect_failed"] = sum(a["failed"] for a in answers)
    # The workers connect in parallel, each timing its own share from its first connect to its
    # last joined: the slowest one's time is the whole connect (worker start-up left out).
    figures["connect_per_s"] = figures["connected"] / max(a["seconds"] for a in answers)
    connect_errors: Counter[str] = Counter()
    for answer in answers:
        connect_errors.update(answer["errors"])
    if connect_errors:
        run.problems.append(f"connect errors: {dict(connect_errors.most_common(3))}")
    figures["settle_seconds"] = _settle(servers, args.settle_seconds)
    cpu0 = sum(server.cpu_seconds() for server in servers)
    time.sleep(1.0)
    figures["idle_server_cpu_pct"] = (sum(s.cpu_seconds() for s in servers) - cpu0) * 100
    figures["rss_idle_mib_each"] = [server.rss() / MIB for server in servers]
    figures["rss_idle_mib"] = max(figures["rss_idle_mib_each"])


def _settle(servers: list[Server], limit: float) -> float:
    """Wait until the servers are quiet (each under 5% of a core for 0.5 s), at most `limit` s.

    Joins publish presence events, and a fresh Mitra also relays and folds the set-up's
    `conversation.opened` outbox rows at start; idle figures and the load start after that.
    """
    started = time.monotonic()
    while time.monotonic() - started < limit:
        cpu0 = [server.cpu_seconds() for server in servers]
        time.sleep(0.5)
        if all(s.cpu_seconds() - c < 0.025 for s, c in zip(servers, cpu0, strict=True)):
            break
    return time.monotonic() - started


def _forwarded(servers: list[Server]) -> list[float]:
    return [counters([server.metrics()]).get(FORWARDED_METRIC, 0.0) for server in servers]


def _wait_for_owners(
    run: Run, servers: list[Server], pool: ClientPool, args: argparse.Namespace
) -> None:
    """Probe until the `chat-owners` group has settled over every instance.

    /ready answered already, but the group may still be rebalancing: a round of probes passes
    when every send is acked without an error *and* every instance forwarded some (so each one
    owns some conversations and sees the others' owned ones answer).
    """
    started = time.monotonic()
    rounds = 0
    while True:
        rounds += 1
        before = _forwarded(servers)
        answers = pool.probe(within=args.owners_probe_seconds)
        after = _forwarded(servers)
        sent, acked = sum(a["sent"] for a in answers), sum(a["acked"] for a in answers)
        errors: Counter[str] = Counter()
        for answer in answers:
            errors.update(answer["errors"])
        forwarded = [b - a for a, b in zip(before, after, strict=True)]
        if sent and acked == sent and not errors and all(n > 0 for n in forwarded):
            break
        last = f"{acked}/{sent} acked, errors {dict(errors)}, forwarded {forwarded}"
        if time.monotonic() - started > args.owners_timeout:
            raise RuntimeError(f"the instances did not settle `chat-owners`: last round {last}")
        time.sleep(1.0)
    run.figures["owners_seconds"] = time.monotonic() - started
    run.figures["owners_rounds"] = rounds
    run.figures["settle_after_probes_seconds"] = _settle(servers, args.settle_seconds)


def _load(
    run: Run,
    servers: list[Server],
    pool: ClientPool,
    args: argparse.Namespace,
    *,
    rate: float,
    database_url: str | None,
) -> None:
    """The fixed-rate phase, then saturation; server CPU, peak RSS, /metrics around each.

    The database work of a phase is what the servers did between the snapshot before it and the
    one after the backlog it left was worked off (so the outbox relay's rounds for its messages
    are in it). Several instances get the fixed-rate phase only.
    """
    saturate = len(servers) == 1
    figures = run.figures
    figures["rate"] = rate
    peaks = [PeakRss(server) for server in servers]
    work: dict[str, Any] = {}
    snaps: list[Snapshot] = []
    try:
        snaps.append(Snapshot.take(servers, database_url))
        cpu0, wall0 = _cpu(servers), time.monotonic()
        answers = pool.fixed_rate(rate, args.latency_seconds, args.body_chars)
        figures["latency"] = merge(answers, _cpu(servers) - cpu0, time.monotonic() - wall0)
        # An overloaded server still works off the fixed-rate backlog after the client's drain;
        # saturation starts from a quiet server, or its figure would include that backlog.
        figures["backlog_seconds"] = _settle(servers, BACKLOG_LIMIT_SECONDS)
        snaps.append(Snapshot.take(servers, database_url))
        work["latency"] = database_work(snaps[0], snaps[1], figures["latency"]["acked"])
        if saturate:
            cpu0, wall0 = _cpu(servers), time.monotonic()
            answers = pool.saturate(args.window, args.saturation_seconds, args.body_chars)
            figures["saturation"] = merge(answers, _cpu(servers) - cpu0, time.monotonic() - wall0)
            figures["saturation_backlog_seconds"] = _settle(servers, BACKLOG_LIMIT_SECONDS)
            snaps.append(Snapshot.take(servers, database_url))
            work["saturation"] = database_work(snaps[1], snaps[2], figures["saturation"]["acked"])
        figures["server_counters"] = counters(snaps[-1].texts)
    finally:
        figures["rss_peak_mib_each"] = [peak.close() / MIB for peak in peaks]
        figures["rss_peak_mib"] = max(figures["rss_peak_mib_each"])
    figures["db"] = work
    hists = [fanout_histogram(snap.texts) for snap in snaps]
    figures["server_fanout"] = {
        phase: histogram_delta(hists[i + 1], hists[i])
        for i, phase in enumerate(PHASES[: len(snaps) - 1])
    }
    if len(servers) > 1:
        first, last = snaps[0].texts, snaps[1].texts
        figures["forwarded_latency_phase"] = [
            counters([b]).get(FORWARDED_METRIC, 0.0) - counters([a]).get(FORWARDED_METRIC, 0.0)
            for a, b in zip(first, last, strict=True)
        ]


def _cpu(servers: list[Server]) -> float:
    return sum(server.cpu_seconds() for server in servers)


# ---- main ------------------------------------------------------------------------------------


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes",
        default="1000,5000",
        help='socket counts of the single-instance runs, comma-separated ("": none)',
    )
    parser.add_argument("--servers", default="bare,mitra", help="which servers, in this order")
    parser.add_argument(
        "--database",
        choices=("sqlite", "postgres", "both"),
        default="both",
        help="Mitra's database for the single-instance runs (PostgreSQL: a private database "
        "on MITRA_TEST_POSTGRES_URL's server, dropped after the run)",
    )
    parser.add_argument(
        "--two-instances",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run two instances over PostgreSQL + tansu (latency phase only)",
    )
    parser.add_argument("--two-instance-sockets", type=int, default=1000)
    parser.add_argument("--two-instance-rate", type=float, default=500.0)
    parser.add_argument(
        "--owners-timeout",
        type=float,
        default=90.0,
        help="most seconds to wait for both instances to own conversations before the load",
    )
    parser.add_argument("--owners-probe-seconds", type=float, default=15.0)
    parser.add_argument("--min-members", type=int, default=2)
    parser.add_argument("--max-members", type=int, default=10)
    parser.add_argument("--rate", type=float, default=1000.0, help="fixed sends per second")
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument("--saturation-seconds", type=float, default=10.0)
    parser.add_argument("--window", type=int, default=2, help="outstanding sends per sender")
    parser.add_argument("--senders", type=int, default=1, help="sending sockets per conversation")
    parser.add_argument("--body-chars", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2, help="client processes")
    parser.add_argument("--connect-batch", type=int, default=50, help="per client process")
    parser.add_argument("--connect-timeout", type=float, default=180.0)
    parser.add_argument(
        "--settle-seconds", type=float, default=30.0, help="most to wait for a quiet server"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--keep", action="store_true", help="keep the server logs and the databases"
    )
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="MITRA_X=V",
        help="extra setting for Mitra (repeatable), e.g. MITRA_CHAT_SEND_QUEUE_SIZE=1024",
    )
    parser.add_argument(
        "--budget-seconds", type=float, default=1500.0, help="no new run starts after this"
    )
    return parser.parse_args()


def _terminated(signum: int, _frame: FrameType | None) -> None:
    # SIGTERM unwinds like Ctrl-C does: servers stopped, private databases dropped.
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def _private_postgres(label: str, keep: bool) -> Iterator[str]:
    """A private, migrated PostgreSQL database for the run; dropped after it (unless --keep),
    also on a failure or Ctrl-C. Its name is chosen before it is created, so one that an
    interrupt leaves half made is dropped too."""
    url = postgres_database_url(label)
    try:
        asyncio.run(create_postgres_database(url))
        yield url
    finally:
        if keep:
            print(f"PostgreSQL database kept: {make_url(url).database}")
        else:
            try:
                asyncio.run(drop_private_postgres(url))
            except Exception as exc:
                name = make_url(url).database
                print(f"could not drop {name}: {type(exc).__name__}: {exc}", file=sys.stderr)


def main() -> None:
    args = parse()
    started = time.monotonic()
    signal.signal(signal.SIGTERM, _terminated)
    raise_open_files_limit()  # inherited by the servers we start
    sizes = [int(size) for size in args.sizes.split(",") if size.strip()]
    servers = [name.strip() for name in args.servers.split(",")]
    databases = ["sqlite", "postgres"] if args.database == "both" else [args.database]
    if not sizes:  # --sizes "": the two-instance run alone
        databases = []
    extra = dict(item.split("=", 1) for item in args.server_env)
    if "postgres" in databases or args.two_instances:
        print(f"PostgreSQL: {make_url(postgres_base_url()).render_as_string()}", flush=True)
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="mitra-chat-bench-"))
        workdir = Path(tempfile.mkdtemp(prefix="mitra-chat-bench-")) if args.keep else Path(tmp)
        if args.keep:
            print(f"work directory (server logs, SQLite database) kept: {workdir}")
        setup: dict[str, float] = {}
        prepared = {
            database: _set_up(stack, database, sizes, args, workdir, extra=extra, setup=setup)
            for database in databases
        }
        runs: list[Run] = []

        def over_budget(what: str) -> bool:
            if time.monotonic() - started <= args.budget_seconds:
                return False
            print(f"budget spent: {what} not run", flush=True)
            return True

        for size in sizes:
            for kind in servers:
                # The bare server keeps no data: it runs once per size, on the first set-up's ids.
                for database in databases if kind == "mitra" else databases[:1]:
                    name = "bare" if kind == "bare" else f"mitra/{database}"
                    if over_budget(f"{name} at {size:,} sockets"):
                        continue
                    print(f"{name}: {size:,} sockets ...", flush=True)
                    target, groups = prepared[database]
                    if kind == "bare":
                        target = Target("bare", "-", target.env, None)
                    runs.append(run_one(target, groups[size], workdir, args))
        if args.two_instances and not over_budget("the two-instance run"):
            runs.append(_two_instance_run(stack, args, workdir, extra=extra, setup=setup))
        report(runs, args, setup)
    print(f"total {time.monotonic() - started:.0f} s")


def _set_up(
    stack: contextlib.ExitStack,
    database: str,
    sizes: list[int],
    args: argparse.Namespace,
    workdir: Path,
    *,
    extra: dict[str, str],
    setup: dict[str, float],
) -> tuple[Target, dict[int, list[Group]]]:
    """One database with the users and conversations of every size, and Mitra's run on it."""
    began = time.monotonic()
    if database == "sqlite":
        url = sqlite_url(workdir)
    else:
        url = stack.enter_context(_private_postgres("single", args.keep))
    env = server_env(url) | extra
    print(
        f"set-up ({database}): {sum(sizes):,} agents with sessions and their conversations ...",
        flush=True,
    )
    groups = asyncio.run(populate(env, sizes, args.min_members, args.max_members, args.seed))
    setup[database] = time.monotonic() - began
    return Target("mitra", database, env, url), groups


def _two_instance_run(
    stack: contextlib.ExitStack,
    args: argparse.Namespace,
    workdir: Path,
    *,
    extra: dict[str, str],
    setup: dict[str, float],
) -> Run:
    """Two `mitra serve` over a fresh PostgreSQL database of their own and a fresh tansu."""
    began = time.monotonic()
    size = args.two_instance_sockets
    url = stack.enter_context(_private_postgres("two", args.keep))
    bootstrap = stack.enter_context(run_tansu(workdir / "tansu.log"))
    env = server_env(url) | kafka_env(bootstrap) | extra
    print(f"set-up (two instances): {size:,} agents ...", flush=True)
    plan = asyncio.run(populate(env, [size], args.min_members, args.max_members, args.seed))
    setup["two instances"] = time.monotonic() - began
    print(f"mitra/postgres x2 (tansu at {bootstrap}): {size:,} sockets ...", flush=True)
    return run_one(Target("mitra", "postgres", env, url, instances=2), plan[size], workdir, args)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("interrupted: servers stopped, private databases dropped", file=sys.stderr)
        sys.exit(130)
