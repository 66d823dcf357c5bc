"""Fixtures for actor tests: every test leaves no actor and no actor thread behind."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterator

import pykka
import pytest

from actors.starter import starter

logger = logging.getLogger(__name__)


async def eventually(predicate: Callable[[], bool], within: float = 5.0) -> None:
    """Wait until `predicate()` holds, polling without blocking the loop; fail after `within`."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s: {predicate}")
        await asyncio.sleep(0.005)


def _actor_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t is not threading.main_thread() and t.is_alive()]


@pytest.fixture(autouse=True, scope="session")
def quick_starter() -> Iterator[None]:
    """The thread-start helper lingers 0.5 s in production; tests wait for it to go."""
    idle, starter.idle_seconds = starter.idle_seconds, 0.02
    yield
    starter.idle_seconds = idle


@pytest.fixture(autouse=True)
def no_leaked_actors() -> Iterator[None]:
    """Stop whatever a test left in the registry (a last resort) and report it as a failure."""
    yield
    leaked = pykka.ActorRegistry.get_all()
    if leaked:
        # Outside the event loop here, so blocking stops are allowed.
        pykka.ActorRegistry.stop_all(block=True, timeout=5)
    # Threads started from the loop go through a helper that lingers briefly; let it go, so
    # the next test's thread-count baseline is clean.
    assert starter.wait_idle(within=5)
    assert not leaked, f"test left actors running: {leaked}"


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """An event actors can block on; always opened at teardown so no thread stays stuck."""
    event = threading.Event()
    yield event
    event.set()
