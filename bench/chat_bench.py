"""Benchmark of Mitra's real-time chat against a bare aiohttp WebSocket broadcast server.

Run from the repository root: `python -m bench.chat_bench` (about 4-6 minutes by default; every
phase is bounded, and `--budget-seconds` stops the run between phases). For each socket count it
runs the bare server (bench/bare_ws.py, the ceiling) and then `mitra serve`, each as its own
process on 127.0.0.1, and drives both with the same client processes (bench/chat_client.py):

1. idle: every socket connected, authenticated and joined; the server's RSS;
2. latency: a fixed rate of sends spread over the conversations (open loop); send->delivered
   latency at every other member's socket, measured by the client;
3. saturation: each sending socket keeps a window of sends outstanding; message frames received
   per second across all sockets, and Mitra's figure as a ratio of the bare server's.

Prints a table, then one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

from bench.bare_ws import raise_open_files_limit
from bench.chat_client import ClientPool, SocketSpec
from bench.chat_setup import Group, populate, server_env, socket_specs

ROOT = Path(__file__).resolve().parent.parent
FANOUT_METRIC = "mitra_chat_fanout_seconds"
PHASES = ("latency", "saturation")
CHAT_COUNTERS = (
    "mitra_chat_open_sockets",
    "mitra_chat_messages_in_total",
    "mitra_chat_messages_out_total",
    "mitra_chat_send_queue_overflows_total",
)
MIB = 1024 * 1024


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
        # aiohttp binds the port only after the app's start-up hooks ran (migrations included).
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} server exited: {self.log_tail()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.kind} server not listening after {timeout:.0f} s")

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


def fanout_histogram(text: str | None) -> dict[str, float] | None:
    """The `mitra_chat_fanout_seconds` buckets (summed over labels), with _sum and _count."""
    if not text or FANOUT_METRIC not in text:
        return None
    found: dict[str, float] = {}
    for line in text.splitlines():
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


def counters(text: str | None) -> dict[str, float]:
    """The chat's plain samples (no labels) from /metrics: sockets, messages, overflows."""
    found: dict[str, float] = {}
    for line in (text or "").splitlines():
        name, _, value = line.partition(" ")
        name = name.removesuffix("{}")
        if name in CHAT_COUNTERS:
            found[name] = float(value)
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

    return {
        "count": int(count),
        "mean_ms": delta.get("sum", 0.0) / count * 1000 if count else None,
        "p50_le_ms": bound(0.5),
        "p99_le_ms": bound(0.99),
    }


# ---- one run: one server, one socket count -------------------------------------------------------


@dataclass
class Run:
    server: str
    sockets: int
    conversations: int
    figures: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def pct(samples: list[float], q: float) -> float | None:
    if not samples:
        return None
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def merge(answers: list[dict[str, Any]], server_cpu: float, wall: float) -> dict[str, Any]:
    """One phase's answers from every worker, as figures."""
    latencies = [x for a in answers for x in a["latencies_ms"]]
    acks = [x for a in answers for x in a["ack_ms"]]
    seconds = max(a["window_seconds"] for a in answers)
    errors: Counter[str] = Counter()
    close_codes: Counter[str] = Counter()
    for answer in answers:
        errors.update(answer["errors"])
        close_codes.update(answer["close_codes"])
    expected = sum(a["expected_to_others"] for a in answers)
    to_others = sum(a["delivered_to_others"] for a in answers)
    return {
        "seconds": seconds,
        "sent": sum(a["sent"] for a in answers),
        "acked": sum(a["acked"] for a in answers),
        "unacked": sum(a["unacked"] for a in answers),
        "acked_per_s": sum(a["acked"] for a in answers) / seconds,
        "delivered_per_s": sum(a["delivered"] for a in answers) / seconds,
        "delivered_to_others": to_others,
        "expected_to_others": expected,
        "completeness": to_others / expected if expected else None,
        "latency_ms": {
            q: pct(latencies, v) for q, v in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
        }
        | {"max": max(latencies, default=None)},
        "ack_ms": {q: pct(acks, v) for q, v in (("p50", 0.5), ("p99", 0.99))},
        "errors": dict(errors),
        "client_cpu_pct": sum(a["cpu_seconds"] for a in answers) / seconds * 100,
        "server_cpu_pct": server_cpu / wall * 100 if wall else None,
        "closed_sockets": sum(a["closed_sockets"] for a in answers),
        "close_codes": dict(close_codes),
    }


def run_one(
    kind: str, groups: list[Group], env: dict[str, str], workdir: Path, args: argparse.Namespace
) -> Run:
    specs = socket_specs(groups, bare=kind == "bare", senders_per_group=args.senders)
    run = Run(server=kind, sockets=len(specs), conversations=len(groups))
    server = Server(kind, workdir, env)
    pool: ClientPool | None = None
    try:
        server.wait_ready(60)
        time.sleep(0.5)
        run.figures["rss_start_mib"] = server.rss() / MIB
        pool = ClientPool(args.workers, run=f"{kind}{len(specs)}")
        run.figures["client_pids"] = pool.pids
        _connect_and_idle(run, server, pool, specs, args)
        _load(run, server, pool, args)
    except Exception as exc:
        # One failed run is reported and the others still run: the table shows what was measured.
        run.problems.append(f"{type(exc).__name__}: {exc}")
    finally:
        if server.proc.poll() is not None:
            run.problems.append(f"server exited with {server.proc.returncode} during the run")
        closed = any(run.figures.get(phase, {}).get("closed_sockets") for phase in PHASES)
        tail = server.log_tail()
        if tail and (run.problems or closed):
            run.problems.append("server log tail:\n" + tail)
        if pool is not None:
            pool.close()
        server.stop()
    return run


def _connect_and_idle(
    run: Run, server: Server, pool: ClientPool, specs: list[SocketSpec], args: argparse.Namespace
) -> None:
    figures = run.figures
    started = time.monotonic()
    answers = pool.connect(server.url + "/ws", specs, args.connect_batch, args.connect_timeout)
    figures["connect_seconds"] = time.monotonic() - started
    figures["connected"] = sum(a["connected"] for a in answers)
    figures["connect_failed"] = sum(a["failed"] for a in answers)
    connect_errors: Counter[str] = Counter()
    for answer in answers:
        connect_errors.update(answer["errors"])
    if connect_errors:
        run.problems.append(f"connect errors: {dict(connect_errors.most_common(3))}")
    figures["settle_seconds"] = _settle(server, args.settle_seconds)
    cpu0 = server.cpu_seconds()
    time.sleep(1.0)
    figures["idle_server_cpu_pct"] = (server.cpu_seconds() - cpu0) * 100
    figures["rss_idle_mib"] = server.rss() / MIB


def _settle(server: Server, limit: float) -> float:
    """Wait until the server is quiet (under 5% of a core for 0.5 s), at most `limit` seconds.

    Joins publish presence events, and a fresh Mitra also relays and folds the set-up's
    `conversation.opened` outbox rows at start; idle figures and the load start after that.
    """
    started = time.monotonic()
    while time.monotonic() - started < limit:
        cpu0 = server.cpu_seconds()
        time.sleep(0.5)
        if server.cpu_seconds() - cpu0 < 0.025:
            break
    return time.monotonic() - started


def _load(run: Run, server: Server, pool: ClientPool, args: argparse.Namespace) -> None:
    """The fixed-rate phase, then saturation; server CPU, peak RSS and /metrics around each."""
    figures = run.figures
    peak = PeakRss(server)
    try:
        scrape0 = fanout_histogram(server.metrics())
        cpu0, wall0 = server.cpu_seconds(), time.monotonic()
        answers = pool.fixed_rate(args.rate, args.latency_seconds, args.body_chars)
        figures["latency"] = merge(answers, server.cpu_seconds() - cpu0, time.monotonic() - wall0)
        # An overloaded server still works off the fixed-rate backlog after the client's drain;
        # saturation starts from a quiet server, or its figure would include that backlog.
        figures["backlog_seconds"] = _settle(server, min(args.settle_seconds, 10.0))
        scrape1 = fanout_histogram(server.metrics())
        cpu0, wall0 = server.cpu_seconds(), time.monotonic()
        answers = pool.saturate(args.window, args.saturation_seconds, args.body_chars)
        figures["saturation"] = merge(
            answers, server.cpu_seconds() - cpu0, time.monotonic() - wall0
        )
        text = server.metrics()
        scrape2 = fanout_histogram(text)
        figures["server_counters"] = counters(text)
    finally:
        figures["rss_peak_mib"] = peak.close() / MIB
    figures["server_fanout"] = {
        "latency": histogram_delta(scrape1, scrape0),
        "saturation": histogram_delta(scrape2, scrape1),
    }


# ---- report ----------------------------------------------------------------------------------


def _f(value: Any, spec: str, missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def _ms(value: float | None) -> str:
    """Milliseconds: tenths while small, whole (with separators) once in the seconds."""
    if value is None:
        return "-"
    return f"{value:.1f}" if value < 100 else f"{value:,.0f}"


def report(runs: list[Run], args: argparse.Namespace, setup_seconds: float) -> None:
    print(
        f"\nchat bench: {args.rate:g} msg/s fixed for {args.latency_seconds:g} s, saturation "
        f"window {args.window} x {args.senders} sender(s)/conversation for "
        f"{args.saturation_seconds:g} s; {args.workers} client processes; "
        f"{os.cpu_count()} CPUs; set-up {setup_seconds:.0f} s"
    )
    header = (
        f"{'server':<7}{'socks':>6}{'convs':>6}{'conn s':>7}{'fail':>5}{'RSS idle':>9}"
        f"{'peak':>6}{'ack/s':>7}{'p50':>8}{'p95':>8}{'p99':>8}{'ack p99':>8}{'deliv%':>7}"
        f"{'sat acks/s':>11}{'sat frames/s':>13}{'ratio':>6}{'cli cpu':>8}{'srv cpu':>8}"
    )
    print(header)
    print("-" * len(header))
    bare_rate: dict[int, float] = {}
    for run in runs:
        f = run.figures
        lat, sat = f.get("latency", {}), f.get("saturation", {})
        lms = lat.get("latency_ms", {})
        rate = sat.get("delivered_per_s")
        if run.server == "bare" and rate:
            bare_rate[run.sockets] = rate
        ratio = rate / bare_rate[run.sockets] if rate and bare_rate.get(run.sockets) else None
        f["saturation_ratio_vs_bare"] = ratio if run.server != "bare" else 1.0
        completeness = lat.get("completeness")
        print(
            f"{run.server:<7}{run.sockets:>6}{run.conversations:>6}"
            f"{_f(f.get('connect_seconds'), '.1f'):>7}{_f(f.get('connect_failed'), 'd'):>5}"
            f"{_f(f.get('rss_idle_mib'), '.0f'):>6} MB{_f(f.get('rss_peak_mib'), '.0f'):>6}"
            f"{_f(lat.get('acked_per_s'), '.0f'):>7}{_ms(lms.get('p50')):>8}"
            f"{_ms(lms.get('p95')):>8}{_ms(lms.get('p99')):>8}"
            f"{_ms(lat.get('ack_ms', {}).get('p99')):>8}"
            f"{_f(None if completeness is None else completeness * 100, '.1f'):>7}"
            f"{_f(sat.get('acked_per_s'), ',.0f'):>11}{_f(rate, ',.0f'):>13}"
            f"{_f(f['saturation_ratio_vs_bare'], '.2f'):>6}"
            f"{_f(sat.get('client_cpu_pct'), '.0f'):>7}%{_f(sat.get('server_cpu_pct'), '.0f'):>7}%"
        )
    print(
        "latency columns: ms from the sender's stamp to the message frame at each other member's "
        "socket, at the fixed rate; deliv% = those frames / (sends x (members-1)); sat frames/s "
        "= message frames received per second across all sockets; cpu = % of one core during "
        "saturation (client: all its processes)"
    )
    for run in runs:
        for line in _notes(run):
            print(f"  {run.server} {run.sockets}: {line}")
    _targets(runs)
    print(json.dumps([run.__dict__ for run in runs], default=str))


def _notes(run: Run) -> list[str]:
    """What the table has no room for: idle detail, errors, closures, the server's view."""
    f = run.figures
    notes = []
    if "rss_idle_mib" in f and f.get("connected"):
        per_socket = (f["rss_idle_mib"] - f["rss_start_mib"]) * 1024 / f["connected"]
        notes.append(
            f"idle: RSS {f['rss_start_mib']:.0f} MB at start -> {f['rss_idle_mib']:.0f} MB "
            f"with {f['connected']} sockets joined ({per_socket:.0f} KB/socket); server CPU "
            f"{f['idle_server_cpu_pct']:.0f}% of a core (quiet {f['settle_seconds']:.1f} s "
            "after the last join)"
        )
    if f.get("backlog_seconds", 0) > 1:
        notes.append(
            f"after the fixed-rate phase (and the client's drain) the server stayed busy "
            f"{f['backlog_seconds']:.1f} s more before saturation started"
        )
    if f.get("server_counters"):
        notes.append(f"server /metrics at the end: {f['server_counters']}")
    for phase in PHASES:
        figures = f.get(phase, {})
        if figures.get("errors"):
            notes.append(f"{phase} errors {figures['errors']}")
        if figures.get("unacked"):
            notes.append(f"{phase}: {figures['unacked']} sends never acked")
        if figures.get("closed_sockets"):
            notes.append(
                f"{phase}: {figures['closed_sockets']} sockets closed by the server so far "
                f"(close codes {figures['close_codes']}; 4008 = send queue overflowed)"
            )
    fanout = f.get("server_fanout") or {}
    for phase, hist in fanout.items():
        if hist:
            notes.append(
                f"server {FANOUT_METRIC} ({phase}): n={hist['count']}, mean "
                f"{_f(hist['mean_ms'], '.1f')} ms, p50 <= {_f(hist['p50_le_ms'], 'g')} ms, "
                f"p99 <= {_f(hist['p99_le_ms'], 'g')} ms"
            )
    if run.server == "mitra" and "latency" in f and not any(fanout.values()):
        notes.append(f"server exposes no {FANOUT_METRIC}")
    return notes + run.problems


def _targets(runs: list[Run]) -> None:
    for run in runs:
        if run.server != "mitra":
            continue
        f = run.figures
        p99 = f.get("latency", {}).get("latency_ms", {}).get("p99")
        checks = [
            ("p99 < 100 ms", p99 is not None and p99 < 100),
            ("saturation ratio >= 0.5", (f.get("saturation_ratio_vs_bare") or 0) >= 0.5),
        ]
        if run.sockets >= 5000:
            checks.append(("idle RSS < 512 MB", 0 < f.get("rss_idle_mib", 0) < 512))
        verdicts = ", ".join(f"{name}: {'ok' if ok else 'MISSED'}" for name, ok in checks)
        print(f"targets, mitra {run.sockets} sockets: {verdicts}")


# ---- main ------------------------------------------------------------------------------------


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000,5000", help="socket counts, comma-separated")
    parser.add_argument("--servers", default="bare,mitra", help="which servers, in this order")
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
    parser.add_argument("--keep", action="store_true", help="keep the server logs and database")
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="MITRA_X=V",
        help="extra setting for Mitra (repeatable), e.g. MITRA_CHAT_SEND_QUEUE_SIZE=1024",
    )
    parser.add_argument(
        "--budget-seconds", type=float, default=600.0, help="no new run starts after this"
    )
    return parser.parse_args()


def main() -> None:
    args = parse()
    started = time.monotonic()
    raise_open_files_limit()  # inherited by the servers we start
    sizes = [int(size) for size in args.sizes.split(",")]
    servers = [name.strip() for name in args.servers.split(",")]
    with tempfile.TemporaryDirectory(prefix="mitra-chat-bench-") as tmp:
        workdir = Path(tempfile.mkdtemp(prefix="mitra-chat-bench-")) if args.keep else Path(tmp)
        if args.keep:
            print(f"work directory (server logs, database) kept: {workdir}")
        env = server_env(workdir) | dict(item.split("=", 1) for item in args.server_env)
        print(
            f"set-up: {sum(sizes):,} agents with sessions and their conversations ...", flush=True
        )
        groups = asyncio.run(populate(env, sizes, args.min_members, args.max_members, args.seed))
        setup_seconds = time.monotonic() - started
        runs: list[Run] = []
        for size in sizes:
            for kind in servers:
                if time.monotonic() - started > args.budget_seconds:
                    print(f"budget spent: {kind} at {size} sockets not run", flush=True)
                    continue
                print(f"{kind}: {size:,} sockets ...", flush=True)
                runs.append(run_one(kind, groups[size], env, workdir, args))
        report(runs, args, setup_seconds)
    print(f"total {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
