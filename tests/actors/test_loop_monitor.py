"""The loop-lag monitor sees a blocked loop and warns about it."""

from __future__ import annotations

import logging
import time

import pytest
from aioprometheus.collectors import Histogram

from actors import LoopLagMonitor
from tests.actors.conftest import eventually


async def test_blocked_loop_shows_as_lag_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="actors.loop_monitor")
    monitor = LoopLagMonitor(interval_seconds=0.01)
    monitor.start()
    try:
        await eventually(lambda: len(monitor.samples) >= 3)
        assert monitor.percentile(0.5) < 0.1
        time.sleep(0.15)  # noqa: ASYNC251 - blocking the loop on purpose is the point
        await eventually(lambda: max(monitor.samples) >= 0.12)
        assert "event loop lagged" in caplog.text
        assert isinstance(monitor.histogram, Histogram)
        assert monitor.histogram.get({})["count"] == len(monitor.samples)
    finally:
        await monitor.stop()
