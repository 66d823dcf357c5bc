"""Benchmark of the actor runtime: bridge vs plain pykka asks, loop lag under load, pool footprint.

Run from the repository root: `python -m bench.actors_bench` (about 30-60 s; every phase is
bounded). Prints a table and, last, one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import queue
import statistics
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import psutil  # type: ignore[import-untyped]
import pykka

from actors import ActorPool, BridgedActor, LoopLagMonitor, Runtime, ask, stop


class Echo(BridgedActor):
    def on_receive(self, message: Any) -> Any:
        return message


class PlainEcho(pykka.ThreadingActor):
    def on_receive(self, message: Any) -> Any:
        return message


class Worker(BridgedActor):
    """Holds the GIL briefly and sleeps briefly, like an actor doing a small DB write."""

    def on_receive(self, message: Any) -> Any:
        time.sleep(0.0005)
        return message


async def in_thread(fn: Callable[[], float]) -> float:
    """Run a blocking measurement on a fresh thread without blocking the loop."""
    result: list[float] = []
    thread = threading.Thread(target=lambda: result.append(fn()))
    thread.start()
    while thread.is_alive():  # noqa: ASYNC110 - a bounded benchmark poll, nothing else waits
        await asyncio.sleep(0.005)
    return result[0]


# ---- throughput ------------------------------------------------------------------------------


async def bridge_sequential(ref: pykka.ActorRef[Any], n: int) -> float:
    started = time.perf_counter()
    for i in range(n):
        await ask(ref, i)
    return n / (time.perf_counter() - started)


async def bridge_concurrent(ref: pykka.ActorRef[Any], n: int, in_flight: int) -> float:
    async def lane(count: int) -> None:
        for i in range(count):
            await ask(ref, i)

    started = time.perf_counter()
    await asyncio.gather(*(lane(n // in_flight) for _ in range(in_flight)))
    return (n // in_flight * in_flight) / (time.perf_counter() - started)


def plain_sequential(ref: pykka.ActorRef[Any], n: int) -> float:
    started = time.perf_counter()
    for i in range(n):
        ref.ask(i)
    return n / (time.perf_counter() - started)


def plain_threads(ref: pykka.ActorRef[Any], n: int, threads: int) -> float:
    per = n // threads
    barrier = threading.Barrier(threads + 1)

    def run() -> None:
        barrier.wait()
        for i in range(per):
            ref.ask(i)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    barrier.wait()
    started = time.perf_counter()
    for worker in workers:
        worker.join()
    return per * threads / (time.perf_counter() - started)


async def asyncio_floor(n: int) -> float:
    """The cheapest thread→loop round trip asyncio allows (no pykka at all), for context."""
    inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def echo() -> None:
        while (item := inbox.get()) is not None:
            loop, future = item
            loop.call_soon_threadsafe(future.set_result, None)

    thread = threading.Thread(target=echo)
    thread.start()
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    for _ in range(n):
        future = loop.create_future()
        inbox.put((loop, future))
        await future
    rate = n / (time.perf_counter() - started)
    inbox.put(None)
    while thread.is_alive():  # noqa: ASYNC110 - bounded benchmark poll
        await asyncio.sleep(0.001)
    return rate


async def rounds(measure: Callable[[], Awaitable[float]], count: int) -> list[float]:
    return [await measure() for _ in range(count)]


async def throughput(n: int, repeats: int) -> dict[str, Any]:
    bridged = Echo.start()
    plain = PlainEcho.start()
    try:
        await bridge_sequential(bridged, n // 4)  # warm-up both paths
        await in_thread(lambda: plain_sequential(plain, n // 4))
        seq_bridge: list[float] = []
        seq_plain: list[float] = []
        for _ in range(repeats):  # interleaved, so machine noise hits both alike
            seq_bridge.append(await bridge_sequential(bridged, n))
            seq_plain.append(await in_thread(lambda: plain_sequential(plain, n)))
        floor = await rounds(lambda: asyncio_floor(n), repeats)
        conc_bridge = await rounds(lambda: bridge_concurrent(bridged, n * 2, 64), repeats)
        conc_plain = await rounds(lambda: in_thread(lambda: plain_threads(plain, n * 2, 64)), 3)
    finally:
        await stop(bridged, drain_seconds=5)
        await in_thread(lambda: float(bool(plain.stop(block=True))))
    med = statistics.median
    return {
        "seq_bridge_per_s": med(seq_bridge),
        "seq_plain_per_s": med(seq_plain),
        "seq_ratio": med(seq_bridge) / med(seq_plain),
        "seq_ratios": [round(b / p, 2) for b, p in zip(seq_bridge, seq_plain, strict=True)],
        "asyncio_floor_per_s": med(floor),
        "floor_ratio": med(floor) / med(seq_plain),
        "bridge_64_in_flight_per_s": med(conc_bridge),
        "bridge64_vs_plain_1_thread": med(conc_bridge) / med(seq_plain),
        "plain_64_threads_per_s": med(conc_plain),
        "bridge64_vs_plain_64_threads": med(conc_bridge) / med(conc_plain),
    }


# ---- loop lag under load ---------------------------------------------------------------------


async def lag_under_load(total: int, actors: int, steady_seconds: float) -> dict[str, Any]:
    """Loop lag with `total` asks outstanding: fired in one burst, then kept up steadily."""
    monitor = LoopLagMonitor(interval_seconds=0.005, keep_samples=100_000)
    monitor.start()
    refs = [Worker.start() for _ in range(actors)]
    try:
        await asyncio.sleep(0.2)
        idle = list(monitor.samples)

        # Burst: every ask created in one loop iteration (the worst case for the loop).
        monitor.samples.clear()
        started = time.perf_counter()
        asks = (ask(refs[i % actors], i, timeout=60) for i in range(total))
        assert len(await asyncio.gather(*asks)) == total
        burst_seconds = time.perf_counter() - started
        burst = list(monitor.samples)

        # Steady: `total` lanes each re-asking as soon as answered, so `total` asks stay in
        # flight; lanes join 500 per iteration, as requests would arrive.
        stop_at = time.monotonic() + steady_seconds
        answered = 0

        async def lane(i: int) -> None:
            nonlocal answered
            ref = refs[i % actors]
            while time.monotonic() < stop_at:
                await ask(ref, i, timeout=60)
                answered += 1

        lanes = []
        for i in range(total):
            lanes.append(asyncio.ensure_future(lane(i)))
            if i % 500 == 499:
                await asyncio.sleep(0)
        monitor.samples.clear()
        await asyncio.gather(*lanes)
        steady = list(monitor.samples)
    finally:
        await monitor.stop()
        await asyncio.gather(*(stop(ref, drain_seconds=10) for ref in refs))
    ms = 1000
    return {
        "asks_in_flight": total,
        "actors": actors,
        "idle_lag_p99_ms": _pct(idle, 0.99) * ms,
        "burst_seconds": burst_seconds,
        "burst_samples": len(burst),
        "burst_lag_p50_ms": _pct(burst, 0.5) * ms,
        "burst_lag_p99_ms": _pct(burst, 0.99) * ms,
        "steady_seconds": steady_seconds,
        "steady_asks_per_s": answered / steady_seconds,
        "steady_samples": len(steady),
        "steady_lag_p50_ms": _pct(steady, 0.5) * ms,
        "steady_lag_p99_ms": _pct(steady, 0.99) * ms,
        "steady_lag_max_ms": max(steady, default=0.0) * ms,
    }


def _pct(samples: list[float], q: float) -> float:
    if not samples:
        return 0.0
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


# ---- pool footprint --------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def pool_footprint(keys: int, cycles: int) -> dict[str, Any]:
    """Threads and RSS with `keys` pooled actors live, and after each passivation cycle."""
    process = psutil.Process()
    gc.collect()
    mib = 1024 * 1024
    base_threads, base_rss = threading.active_count(), process.memory_info().rss
    clock = Clock()
    runtime = Runtime(asyncio.get_running_loop())
    pool: ActorPool[str] = ActorPool(
        "bench",
        lambda a: Echo.start(runtime=a.runtime, start_after=a.predecessor),
        runtime=runtime,
        idle_timeout_seconds=60,
        max_live=keys,
        clock=clock,
    )
    result: dict[str, Any] = {
        "keys": keys,
        "threads_before": base_threads,
        "rss_before_mib": base_rss / mib,
        "cycles": [],
    }
    for _ in range(cycles):
        monitor = LoopLagMonitor(interval_seconds=0.005, keep_samples=100_000)
        monitor.start()
        started = time.perf_counter()
        for chunk in range(0, keys, 1000):
            await asyncio.gather(*(pool.ask(f"k{i}", i) for i in range(chunk, chunk + 1000)))
        activated = time.perf_counter() - started
        await monitor.stop()
        activation_lag = list(monitor.samples)
        live_threads, live_rss = threading.active_count(), process.memory_info().rss
        clock.now += 61
        started = time.perf_counter()
        passivated = pool.sweep()
        deadline = time.monotonic() + 30
        while threading.active_count() > base_threads and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        drained = time.perf_counter() - started
        gc.collect()
        result["cycles"].append(
            {
                "activate_seconds": activated,
                "activate_lag_p99_ms": _pct(activation_lag, 0.99) * 1000,
                "activate_lag_max_ms": max(activation_lag, default=0.0) * 1000,
                "passivated": passivated,
                "passivate_seconds": drained,
                "threads_live": live_threads,
                "threads_after": threading.active_count(),
                "rss_live_mib": live_rss / mib,
                "rss_after_mib": process.memory_info().rss / mib,
                "rss_per_actor_kib": (live_rss - base_rss) / keys / 1024,
            }
        )
    await pool.close(drain_seconds=10)
    return result


# ---- main ------------------------------------------------------------------------------------


async def main(args: argparse.Namespace) -> dict[str, Any]:
    async with asyncio.timeout(args.budget_seconds):
        result: dict[str, Any] = {
            "loop": type(asyncio.get_running_loop()).__module__,
            "switch_interval_s": sys.getswitchinterval(),
        }
        result["throughput"] = await throughput(args.asks, args.repeats)
        result["lag"] = await lag_under_load(args.in_flight, args.actors, args.steady_seconds)
        result["pool"] = await pool_footprint(args.pooled, args.cycles)
        return result


def report(result: dict[str, Any]) -> None:
    t, lag, pool = result["throughput"], result["lag"], result["pool"]
    print(f"loop {result['loop']}, GIL switch interval {result['switch_interval_s'] * 1000:g} ms")
    print("== asks per second (median of interleaved rounds) ==")
    print(f"bridge, loop, 1 in flight      {t['seq_bridge_per_s']:>10,.0f}")
    print(f"plain pykka, 1 thread, block   {t['seq_plain_per_s']:>10,.0f}")
    print(f"  ratio bridge/plain           {t['seq_ratio']:>10.2f}   rounds {t['seq_ratios']}")
    print(f"asyncio floor (no pykka)       {t['asyncio_floor_per_s']:>10,.0f}")
    print(f"  ratio floor/plain            {t['floor_ratio']:>10.2f}")
    print(f"bridge, loop, 64 in flight     {t['bridge_64_in_flight_per_s']:>10,.0f}")
    print(f"  ratio vs plain 1 thread      {t['bridge64_vs_plain_1_thread']:>10.2f}")
    print(f"plain pykka, 64 threads        {t['plain_64_threads_per_s']:>10,.0f}")
    print(f"  ratio bridge64/plain64       {t['bridge64_vs_plain_64_threads']:>10.2f}")
    print(f"== loop lag, {lag['asks_in_flight']:,} asks in flight over {lag['actors']} actors ==")
    print(
        f"burst  (all created at once): p50 {lag['burst_lag_p50_ms']:.1f} ms, "
        f"p99 {lag['burst_lag_p99_ms']:.1f} ms ({lag['burst_samples']} samples, "
        f"{lag['burst_seconds']:.2f} s)"
    )
    print(
        f"steady (kept in flight {lag['steady_seconds']:g} s, "
        f"{lag['steady_asks_per_s']:,.0f} asks/s): p50 {lag['steady_lag_p50_ms']:.1f} ms, "
        f"p99 {lag['steady_lag_p99_ms']:.1f} ms, max {lag['steady_lag_max_ms']:.1f} ms "
        f"({lag['steady_samples']} samples); idle p99 {lag['idle_lag_p99_ms']:.1f} ms"
    )
    print(f"== pool of {pool['keys']:,} actors ==")
    print(f"before: threads {pool['threads_before']}, RSS {pool['rss_before_mib']:.0f} MiB")
    for n, c in enumerate(pool["cycles"], 1):
        print(
            f"cycle {n}: live threads {c['threads_live']}, RSS {c['rss_live_mib']:.0f} MiB "
            f"({c['rss_per_actor_kib']:.0f} KiB/actor), activate {c['activate_seconds']:.2f} s "
            f"(lag p99 {c['activate_lag_p99_ms']:.0f} ms, max {c['activate_lag_max_ms']:.0f}); "
            f"passivated {c['passivated']} in {c['passivate_seconds']:.2f} s -> threads "
            f"{c['threads_after']}, RSS {c['rss_after_mib']:.0f} MiB"
        )
    print(json.dumps(result, default=str))


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--asks", type=int, default=20_000, help="asks per throughput round")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--in-flight", type=int, default=10_000)
    parser.add_argument("--actors", type=int, default=100, help="actors behind the in-flight asks")
    parser.add_argument("--steady-seconds", type=float, default=3.0)
    parser.add_argument("--pooled", type=int, default=10_000)
    parser.add_argument("--cycles", type=int, default=2, help="activate/passivate cycles")
    parser.add_argument("--budget-seconds", type=float, default=300.0)
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop (if installed)")
    parser.add_argument(
        "--switch-interval", type=float, default=None, help="sys.setswitchinterval (GIL), seconds"
    )
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse()
    if arguments.switch_interval is not None:
        sys.setswitchinterval(arguments.switch_interval)
    if arguments.uvloop:
        import uvloop  # type: ignore[import-not-found, unused-ignore]

        report(uvloop.run(main(arguments)))
    else:
        report(asyncio.run(main(arguments)))
