"""The chat benchmark's results: one `Run` per server, database and size; the printed report.

The report is a table of the single-instance runs, notes on each run, the database work per
accepted message, the two-instance figures, one verdict line per Mitra run against the targets
of the issue "Hot paths at line rate" (each met, "ok", or "MISSED", with its figure), then one
JSON line with every figure for other tools.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass, field
from typing import Any

FANOUT_METRIC = "mitra_chat_fanout_seconds"
PHASES = ("latency", "saturation")
# After a load phase, the most to wait for the server's backlog (relay, consumers) to drain
# before the next snapshot: bounded, so an overloaded server cannot stretch the run.
BACKLOG_LIMIT_SECONDS = 10.0

# The targets of the issue "Hot paths at line rate".
TARGET_P99_MS = 100.0
TARGET_RATIO = 0.5
TARGET_RSS_MIB = 512.0
RSS_TARGET_SOCKETS = 5000
TARGET_COMMITS_PER_MESSAGE = 0.1


@dataclass
class Run:
    """What one run measured; `figures` goes into the JSON line as it is."""

    server: str  # "bare" or "mitra"
    database: str  # "-" for the bare server, "sqlite" or "postgres"
    instances: int
    sockets: int
    conversations: int
    figures: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    targets: dict[str, bool] = field(default_factory=dict)

    @property
    def label(self) -> str:
        if self.server == "bare":
            return "bare"
        return f"mitra/{self.database}" + (f" x{self.instances}" if self.instances > 1 else "")


def _f(value: Any, spec: str, missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def _ms(value: float | None) -> str:
    """Milliseconds: tenths while small, whole (with separators) once in the seconds."""
    if value is None:
        return "-"
    return f"{value:.1f}" if value < 100 else f"{value:,.0f}"


def report(runs: list[Run], args: argparse.Namespace, setup: dict[str, float]) -> None:
    spent = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in setup.items())
    print(
        f"\nchat bench: {args.rate:g} msg/s fixed for {args.latency_seconds:g} s, saturation "
        f"window {args.window} x {args.senders} sender(s)/conversation for "
        f"{args.saturation_seconds:g} s; {args.workers} client processes; "
        f"{os.cpu_count()} CPUs; set-up: {spent}"
    )
    single = [run for run in runs if run.instances == 1]
    _ratios(single)
    if single:
        _table(single)
    for run in runs:
        for line in _notes(run):
            print(f"  {run.label} {run.sockets}: {line}")
    _database_report(runs)
    for run in runs:
        if run.instances > 1:
            _two_instance_report(run)
    _targets(runs)
    print(json.dumps([run.__dict__ | {"label": run.label} for run in runs], default=str))


def _table(single: list[Run]) -> None:
    header = (
        f"{'server':<16}{'socks':>6}{'convs':>6}{'conn/s':>7}{'ratio':>6}{'fail':>5}"
        f"{'RSS idle':>9}{'peak':>6}{'ack/s':>7}{'p50':>8}{'p95':>8}{'p99':>8}{'ack p99':>8}"
        f"{'deliv%':>7}{'sat acks/s':>11}{'sat frames/s':>13}{'ratio':>6}{'cli cpu':>8}"
        f"{'srv cpu':>8}"
    )
    print(header)
    print("-" * len(header))
    for run in single:
        f = run.figures
        lat, sat = f.get("latency", {}), f.get("saturation", {})
        lms = lat.get("latency_ms", {})
        completeness = lat.get("completeness")
        print(
            f"{run.label:<16}{run.sockets:>6}{run.conversations:>6}"
            f"{_f(f.get('connect_per_s'), '.0f'):>7}{_f(f.get('connect_ratio_vs_bare'), '.2f'):>6}"
            f"{_f(f.get('connect_failed'), 'd'):>5}"
            f"{_f(f.get('rss_idle_mib'), '.0f'):>6} MB{_f(f.get('rss_peak_mib'), '.0f'):>6}"
            f"{_f(lat.get('acked_per_s'), '.0f'):>7}{_ms(lms.get('p50')):>8}"
            f"{_ms(lms.get('p95')):>8}{_ms(lms.get('p99')):>8}"
            f"{_ms(lat.get('ack_ms', {}).get('p99')):>8}"
            f"{_f(None if completeness is None else completeness * 100, '.1f'):>7}"
            f"{_f(sat.get('acked_per_s'), ',.0f'):>11}"
            f"{_f(sat.get('delivered_per_s'), ',.0f'):>13}"
            f"{_f(f.get('saturation_ratio_vs_bare'), '.2f'):>6}"
            f"{_f(sat.get('client_cpu_pct'), '.0f'):>7}%{_f(sat.get('server_cpu_pct'), '.0f'):>7}%"
        )
    print(
        "conn/s: sockets connected, authenticated and joined per second (ratio: of the bare "
        "server's); latency columns: ms from the sender's stamp to the message frame at each "
        "other member's socket, at the fixed rate; deliv% = those frames / (sends x "
        "(members-1)); sat frames/s = message frames received per second across all sockets; "
        "cpu = % of one core during saturation (client: all its processes); RSS is the server "
        "process's (PostgreSQL's own processes are not in it)"
    )


def _ratios(runs: list[Run]) -> None:
    """Each Mitra run's saturation and connect rates as ratios of the bare server's, same size."""
    bare = {run.sockets: run.figures for run in runs if run.server == "bare"}
    for run in runs:
        f = run.figures
        if run.server == "bare":
            f["saturation_ratio_vs_bare"] = f["connect_ratio_vs_bare"] = 1.0
            continue
        ceiling = bare.get(run.sockets, {})
        for key, rate in (
            ("saturation_ratio_vs_bare", f.get("saturation", {}).get("delivered_per_s")),
            ("connect_ratio_vs_bare", f.get("connect_per_s")),
        ):
            if key == "saturation_ratio_vs_bare":
                base = ceiling.get("saturation", {}).get("delivered_per_s")
            else:
                base = ceiling.get("connect_per_s")
            # A rate of 0 is a measured 0 (nothing delivered in the window), not a missing one.
            f[key] = rate / base if rate is not None and base else None


def _notes(run: Run) -> list[str]:
    """What the table has no room for: idle detail, errors, closures, the server's view."""
    f = run.figures
    notes = []
    if "rss_idle_mib" in f and f.get("connected"):
        per_socket = (f["rss_idle_mib"] - f["rss_start_mib"]) * 1024 / f["connected"]
        per_instance = f" (each instance: {f['rss_idle_mib_each']})" if run.instances > 1 else ""
        notes.append(
            f"idle: RSS {f['rss_start_mib']:.0f} MB at start -> {f['rss_idle_mib']:.0f} MB "
            f"with {f['connected']} sockets joined ({per_socket:.0f} KB/socket){per_instance}; "
            f"server CPU {f['idle_server_cpu_pct']:.0f}% of a core (quiet "
            f"{f['settle_seconds']:.1f} s after the last join); connect took "
            f"{f['connect_seconds']:.1f} s"
        )
    for key, what in (("backlog_seconds", "fixed-rate"), ("saturation_backlog_seconds", "sat.")):
        if f.get(key, 0) > 1:
            cut = f[key] >= BACKLOG_LIMIT_SECONDS
            notes.append(
                f"after the {what} phase (and the client's drain) the server stayed busy "
                f"{f[key]:.1f} s more"
                + ("; still busy at the limit: the phase's database counts may miss work" * cut)
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
                f"{_f(hist['mean_ms'], '.1f')} ms, p50 {_le(hist['p50_le_ms'], hist)} ms, "
                f"p99 {_le(hist['p99_le_ms'], hist)} ms"
            )
    if run.server == "mitra" and "latency" in f and not any(fanout.values()):
        notes.append(f"server exposes no {FANOUT_METRIC}")
    return notes + run.problems


def _le(bound: float | None, hist: dict[str, Any]) -> str:
    """A quantile as its histogram bucket: `<= 250`, or `> 2500` past the last finite bucket."""
    if bound is None:
        return "-"
    if bound == float("inf"):
        return f"> {_f(hist.get('last_bucket_ms'), 'g')}"
    return f"<= {bound:g}"


def _per_message(work: dict[str, Any], kind: str) -> str:
    per = work.get(f"{kind}_per_message")
    if not per:
        return f"{kind} -"
    parts = " + ".join(f"{p} {v:.3f}" for p, v in per.items() if p != "all" and v)
    return f"{kind} {per['all']:.3f}" + (f" = {parts}" if parts else "")


def _database_report(runs: list[Run]) -> None:
    mitra = [run for run in runs if run.server == "mitra" and run.figures.get("db")]
    if not mitra:
        return
    print(
        "database work per accepted message (deltas of mitra_db_commits_total and "
        "mitra_db_statements_total over the phase and its backlog / stored = rows added to "
        "messages in the same window, which equals acked while the server keeps up; write "
        "batches = their distinct commit stamps, to check the chat.write commits by):"
    )
    for run in mitra:
        for phase, work in run.figures["db"].items():
            if not work:
                continue
            stored = _f(work.get("stored"), ",d")
            batches = _f(work.get("write_batches"), ",d")
            writes = _f(work["commits"].get("chat.write"), ",.0f")
            print(
                f"  {run.label} {run.sockets} {phase:<10} {work['acked']:>7,} acked "
                f"{stored:>7} stored, {writes:>6} chat.write commits for {batches:>6} write "
                f"batches | {_per_message(work, 'commits')} | {_per_message(work, 'statements')}"
            )


def _two_instance_report(run: Run) -> None:
    f = run.figures
    lat = f.get("latency", {})
    cross, every = lat.get("cross_latency_ms", {}), lat.get("latency_ms", {})
    completeness, cross_done = lat.get("completeness"), lat.get("cross_completeness")
    print(
        f"two instances (PostgreSQL + tansu), {run.sockets:,} sockets in {run.conversations} "
        f"conversations alternating between them, {f.get('rate', 0):g} msg/s for "
        f"{lat.get('seconds', 0):.0f} s:"
    )
    print(
        f"  cross-instance latency p50 {_ms(cross.get('p50'))}, p95 {_ms(cross.get('p95'))}, "
        f"p99 {_ms(cross.get('p99'))}, max {_ms(cross.get('max'))} ms over "
        f"{lat.get('delivered_cross', 0):,} frames ({_pct(cross_done)} of "
        f"{lat.get('expected_cross', 0):,} expected); every delivery p99 {_ms(every.get('p99'))} "
        f"ms ({_pct(completeness)} complete); ack p99 {_ms(lat.get('ack_ms', {}).get('p99'))} ms"
    )
    print(
        f"  sent {lat.get('sent', 0):,}, acked {lat.get('acked', 0):,}, errors "
        f"{lat.get('errors', {})}, closed sockets {lat.get('closed_sockets', 0)}; forwarded "
        f"through chat.commands per instance {f.get('forwarded_latency_phase')}; "
        f"chat-owners settled after {_f(f.get('owners_seconds'), '.1f')} s "
        f"({f.get('owners_rounds')} probe rounds); peak RSS per instance "
        f"{[round(x) for x in f.get('rss_peak_mib_each', [])]} MB"
    )


def _pct(share: float | None) -> str:
    return "-" if share is None else f"{share * 100:.1f}%"


def _check(name: str, value: float | None, ok: bool, shown: str) -> tuple[str, bool, str]:
    return name, value is not None and ok, "not measured" if value is None else shown


def _targets(runs: list[Run]) -> None:
    """One verdict line per Mitra run: every target met (ok) or MISSED, with its figure."""
    for run in runs:
        if run.server != "mitra":
            continue
        f = run.figures
        lat = f.get("latency", {})
        rate = f.get("rate", 0)
        checks: list[tuple[str, bool, str]] = []
        if run.instances > 1:
            p99 = lat.get("cross_latency_ms", {}).get("p99")
            checks.append(
                _check(
                    f"cross-instance p99 < {TARGET_P99_MS:g} ms at {rate:g} msg/s",
                    p99,
                    p99 is not None and p99 < TARGET_P99_MS,
                    f"{_ms(p99)} ms, {_pct(lat.get('cross_completeness'))} delivered, "
                    f"errors {sum(lat.get('errors', {}).values())}",
                )
            )
        else:
            p99 = lat.get("latency_ms", {}).get("p99")
            sat_ratio = f.get("saturation_ratio_vs_bare")
            connect_ratio = f.get("connect_ratio_vs_bare")
            sat_work = (f.get("db") or {}).get("saturation") or {}
            commits = (sat_work.get("commits_per_message") or {}).get("all")
            checks += [
                _check(
                    f"p99 < {TARGET_P99_MS:g} ms at {rate:g} msg/s",
                    p99,
                    p99 is not None and p99 < TARGET_P99_MS,
                    f"{_ms(p99)} ms",
                ),
                _check(
                    f"saturation ratio >= {TARGET_RATIO:g}",
                    sat_ratio,
                    (sat_ratio or 0) >= TARGET_RATIO,
                    f"{_f(sat_ratio, '.2f')}",
                ),
                _check(
                    f"connect ratio >= {TARGET_RATIO:g}",
                    connect_ratio,
                    (connect_ratio or 0) >= TARGET_RATIO,
                    f"{_f(connect_ratio, '.2f')}",
                ),
            ]
            if run.sockets >= RSS_TARGET_SOCKETS:
                peak = f.get("rss_peak_mib")
                checks.append(
                    _check(
                        f"peak RSS < {TARGET_RSS_MIB:g} MB",
                        peak,
                        0 < (peak or 0) < TARGET_RSS_MIB,
                        f"{_f(peak, '.0f')} MB",
                    )
                )
            checks.append(
                _check(
                    f"commits/message < {TARGET_COMMITS_PER_MESSAGE:g} at saturation",
                    commits,
                    commits is not None and commits < TARGET_COMMITS_PER_MESSAGE,
                    f"{_f(commits, '.3f')}",
                )
            )
        run.targets = {name: ok for name, ok, _ in checks}
        verdicts = "; ".join(
            f"{name}: {'ok' if ok else 'MISSED'} ({shown})" for name, ok, shown in checks
        )
        print(f"targets, {run.label} {run.sockets} sockets: {verdicts}")
