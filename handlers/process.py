"""Process-wide runtime choices `mitra serve` makes: the event loop, the collector, the GIL.

Each was measured with `make bench-chat` (README "Benchmarks"); each is a setting so that an
operator can turn it back.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
from collections.abc import Awaitable, Callable

from aiohttp import web

from mitra.settings import ServerSettings

log = logging.getLogger("mitra.process")


def configure_process(settings: ServerSettings) -> None:
    """Before the loop exists: pick its implementation, collector thresholds, switch interval."""
    if settings.event_loop == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(settings.gc_threshold, middle, oldest)
    sys.setswitchinterval(settings.switch_interval_ms / 1000)


def freeze_after_startup(
    settings: ServerSettings,
) -> Callable[[web.Application], Awaitable[None]]:
    """An on_startup hook: once start-up has made its long-lived objects, freeze them."""

    async def freeze(_: web.Application) -> None:
        if not settings.gc_freeze:
            return
        gc.collect()
        gc.freeze()
        log.info("collector: %d start-up objects frozen", gc.get_freeze_count())

    return freeze
