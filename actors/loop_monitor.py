"""Measures event-loop lag (how late a timed sleep wakes up) and warns when it grows."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import deque

from aioprometheus.collectors import Gauge, Histogram, Registry

from actors.metrics import collector

__all__ = ["LoopLagMonitor"]

logger = logging.getLogger(__name__)

LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class LoopLagMonitor:
    """A task that sleeps `interval_seconds` and records how much longer the sleep took.

    Anything that blocks the loop (a blocking `get()`, CPU-heavy parsing, sync I/O) shows up
    as lag. Sets `mitra_event_loop_lag_seconds` (histogram) and
    `mitra_event_loop_lag_last_seconds` (gauge); logs a warning (at most once per
    `warn_every_seconds`) when lag passes `warn_seconds`. Keeps the last samples for
    percentiles in benchmarks and health checks.
    """

    def __init__(
        self,
        registry: Registry | None = None,
        *,
        interval_seconds: float = 0.25,
        warn_seconds: float = 0.1,
        warn_every_seconds: float = 10.0,
        keep_samples: int = 4096,
    ) -> None:
        registry = registry if registry is not None else Registry()
        self.interval_seconds = interval_seconds
        self.warn_seconds = warn_seconds
        self.warn_every_seconds = warn_every_seconds
        self.samples: deque[float] = deque(maxlen=keep_samples)
        self.histogram = collector(
            registry,
            Histogram,
            "mitra_event_loop_lag_seconds",
            "How late the event loop woke from a timed sleep.",
            buckets=LAG_BUCKETS,
        )
        self.gauge = collector(
            registry, Gauge, "mitra_event_loop_lag_last_seconds", "Latest event-loop lag sample."
        )
        self._task: asyncio.Task[None] | None = None
        self._last_warning = -math.inf
        self._suppressed = 0

    def start(self) -> asyncio.Task[None]:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="loop-lag")
        return self._task

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def percentile(self, q: float) -> float:
        """The q-quantile (0..1) of the kept samples; 0.0 when there are none."""
        if not self.samples:
            return 0.0
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(self.interval_seconds)
            now = loop.time()
            self.record(max(0.0, now - started - self.interval_seconds), now)

    def record(self, lag: float, now: float) -> None:
        self.samples.append(lag)
        self.histogram.observe({}, lag)
        self.gauge.set({}, lag)
        if lag <= self.warn_seconds:
            return
        if now - self._last_warning < self.warn_every_seconds:
            self._suppressed += 1
            return
        logger.warning(
            "event loop lagged %.0f ms (threshold %.0f ms; %d more since the last warning): "
            "something is blocking the loop",
            lag * 1000,
            self.warn_seconds * 1000,
            self._suppressed,
        )
        self._last_warning, self._suppressed = now, 0
