"""Starts actor threads off the event loop, so activating an actor never stalls the loop."""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable

__all__ = ["ThreadStarter", "starter"]

_Job = tuple[threading.Thread, Callable[[BaseException], None]]

logger = logging.getLogger(__name__)


class ThreadStarter:
    """A helper thread that runs `Thread.start()` for the event loop.

    `Thread.start()` creates the OS thread and waits until it runs: ~0.2 ms with few threads,
    ~1 ms with 10,000 (measured in bench/actors_bench.py). On the loop, a burst of
    activations would stall every request. The helper exits after `idle_seconds` without
    work, so an idle process keeps no extra thread.
    """

    def __init__(self, idle_seconds: float = 0.5) -> None:
        self.idle_seconds = idle_seconds
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def submit(self, thread: threading.Thread, on_error: Callable[[BaseException], None]) -> None:
        """Start `thread` soon; `on_error(exc)` (on the helper) if it cannot be started."""
        self._queue.put((thread, on_error))
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="actor-starter", daemon=True)
                self._thread.start()

    def wait_idle(self, within: float) -> bool:
        """Block until the helper has exited (tests and shutdown count threads); True if so."""
        deadline = time.monotonic() + within
        while True:
            with self._lock:
                thread = self._thread
            if thread is None:
                return True
            thread.join(max(deadline - time.monotonic(), 0.0))
            if time.monotonic() >= deadline:
                with self._lock:
                    return self._thread is None

    def running(self) -> bool:
        with self._lock:
            return self._thread is not None

    async def wait_idle_async(self, within: float) -> bool:
        """`wait_idle` for the event loop: polls (bounded) instead of joining.

        Shutdown calls this, so the helper is asked to leave now rather than after its idle
        timeout; it still starts whatever was submitted before.
        """
        if self.running():
            self._queue.put(None)
        deadline = time.monotonic() + within
        while self.running():
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    def _run(self) -> None:
        while True:
            try:
                job = self._queue.get(timeout=self.idle_seconds)
            except queue.Empty:
                job = None
            if job is None:
                with self._lock:
                    # A submit that queued before we took the lock is seen here; one after
                    # it finds _thread None and starts a new helper.
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            thread, on_error = job
            try:
                thread.start()
            except BaseException as exc:  # e.g. RuntimeError "can't start new thread"
                logger.error("could not start actor thread %s: %r", thread.name, exc)
                on_error(exc)


starter = ThreadStarter()
"""The process's helper: actor threads are a process-wide resource, like pykka's registry."""
