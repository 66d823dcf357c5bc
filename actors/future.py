"""A pykka future that an asyncio task can await without blocking the event loop."""

from __future__ import annotations

import asyncio
import logging
import queue
import sys
import threading
import weakref
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, TypeVar

import pykka
from pykka._future import _Unset

from actors.errors import ActorStopped

if TYPE_CHECKING:
    from pykka._types import OptExcInfo

__all__ = ["BridgeFuture"]

T = TypeVar("T")

logger = logging.getLogger(__name__)

_PENDING, _VALUE, _ERROR = 0, 1, 2
_UNSET = _Unset()  # pykka only tests isinstance(..., _Unset); one shared instance will do

# Waiters resolved per loop callback: bounds how long one loop iteration runs under a flood.
_DRAIN_BATCH = 256


class _LoopWaker:
    """Coalesces cross-thread wake-ups for one event loop.

    Every `call_soon_threadsafe` writes to the loop's self-pipe (a syscall plus a loop
    iteration). Under load many futures complete while the loop is busy; they queue here
    and one scheduled drain resolves them all.
    """

    __slots__ = ("__weakref__", "_lock", "_loop", "_pending")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._pending: list[asyncio.Future[None]] = []

    def wake(self, waiter: asyncio.Future[None]) -> None:
        with self._lock:
            self._pending.append(waiter)
            first = len(self._pending) == 1
        if first:
            try:
                self._loop.call_soon_threadsafe(self._drain)
            except RuntimeError:
                # The loop is closed: nobody is left to await the waiters.
                with self._lock:
                    self._pending.clear()

    def _drain(self) -> None:
        with self._lock:
            batch = self._pending[:_DRAIN_BATCH]
            del self._pending[:_DRAIN_BATCH]
            more = bool(self._pending)
        if more:
            # Producers only schedule a drain when the list was empty, so keep draining; one
            # batch per loop iteration lets timers and sockets run in between.
            self._loop.call_soon(self._drain)
        for waiter in batch:
            if not waiter.done():  # a timed-out or cancelled awaiter has moved on
                waiter.set_result(None)


_wakers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopWaker] = (
    weakref.WeakKeyDictionary()
)


class BridgeFuture(pykka.Future[T]):
    """A `pykka.Future` that threads can block on and asyncio tasks can await.

    `get()` blocks the calling thread (use it on actor threads only; on an event-loop thread
    it raises instead of stalling the loop). `await future` parks the task on an
    `asyncio.Future` that the setting thread resolves via `call_soon_threadsafe`, so the loop
    keeps running while the actor works. Done-callbacks run on the thread that sets the
    result; they let supervisors watch children without asking them.
    """

    def __init__(self, waiter: asyncio.Future[None] | None = None) -> None:
        """`waiter`: an asyncio future to resolve on completion, when the creator is on the
        loop and will await (saves `waiter()` a lock on the hot path)."""
        # pykka.Future.__init__ only sets these two; setting them here saves a frame and an
        # allocation per ask.
        self._get_hook = None
        self._get_hook_result = _UNSET
        self._lock = threading.Lock()
        self._state = _PENDING
        self._value: Any = None
        self._exc_info: OptExcInfo | None = None
        self._event: threading.Event | None = None
        self._waiter = waiter
        self._callbacks: list[Callable[[BridgeFuture[T]], None]] | None = None

    def __repr__(self) -> str:
        state = ("pending", "value", "error")[self._state]
        return f"<BridgeFuture {state}>"

    # ---- pykka.Future interface -------------------------------------------------------------

    def get(self, *, timeout: float | None = None) -> T:
        if self._get_hook is not None:
            return super().get(timeout=timeout)
        with self._lock:
            event = None
            if self._state == _PENDING:
                if asyncio._get_running_loop() is not None:
                    # Blocking here would stall every request on this loop.
                    raise RuntimeError(
                        "blocking BridgeFuture.get() on an event-loop thread; await it instead"
                    )
                event = self._event = self._event or threading.Event()
        if event is not None and not event.wait(timeout):
            raise pykka.Timeout(f"{timeout} seconds")
        return self._result()

    def set(self, value: T | None = None) -> None:
        self._complete(_VALUE, value, None)

    def set_exception(self, exc_info: OptExcInfo | None = None) -> None:
        if exc_info is None:
            exc_info = sys.exc_info()
        exc = exc_info[1]
        if isinstance(exc, pykka.ActorDeadError) and not isinstance(exc, ActorStopped):
            # pykka raises its own ActorDeadError when asked after death; callers catch
            # Mitra's ActorUnavailable, and ActorStopped is both.
            stopped = ActorStopped(str(exc))
            exc_info = (ActorStopped, stopped, exc_info[2])
        self._complete(_ERROR, None, exc_info)

    def set_get_hook(self, func: Callable[[float | None], T]) -> None:
        with self._lock:
            if self._state != _PENDING:
                raise queue.Full
            super().set_get_hook(func)

    def __await__(self) -> Generator[Any, None, T]:
        if self._get_hook is not None:
            # Hook futures (map/join/stop) compute their value with blocking get() calls.
            raise TypeError("a derived pykka future cannot be awaited without blocking")
        waiter = self.waiter()
        if waiter is not None:
            yield from waiter.__await__()
        return self._result()

    __iter__ = __await__

    # ---- bridge ------------------------------------------------------------------------------

    def waiter(self) -> asyncio.Future[None] | None:
        """Return an asyncio future on the running loop resolved when this one is; None if done.

        Must be called on the event-loop thread. Cancelling the returned future only stops
        waiting; the actor still handles the message.
        """
        with self._lock:
            if self._state != _PENDING:
                return None
            if self._waiter is None or self._waiter.done():
                self._waiter = asyncio.get_running_loop().create_future()
            return self._waiter

    def done(self) -> bool:
        """Whether a value or an exception has been set."""
        return self._state != _PENDING

    def add_done_callback(self, callback: Callable[[BridgeFuture[T]], None]) -> None:
        """Call `callback(self)` once done: on the setting thread, or now if already done."""
        with self._lock:
            if self._state == _PENDING:
                if self._callbacks is None:
                    self._callbacks = []
                self._callbacks.append(callback)
                return
        self._run_callback(callback)

    def result(self) -> T:
        """The value of a done future (or raise its exception); never blocks."""
        if self._state == _PENDING:
            raise asyncio.InvalidStateError("BridgeFuture is not done")
        return self._result()

    def exception(self) -> BaseException | None:
        """The exception set on a done future, else None (non-blocking)."""
        return None if self._exc_info is None else self._exc_info[1]

    # ---- internals ---------------------------------------------------------------------------

    def _complete(self, state: int, value: Any, exc_info: OptExcInfo | None) -> None:
        with self._lock:
            if self._state != _PENDING or self._get_hook is not None:
                raise queue.Full  # pykka's signal for "set twice"
            self._state, self._value, self._exc_info = state, value, exc_info
            event, waiter, callbacks = self._event, self._waiter, self._callbacks
            self._callbacks = None
        if event is not None:
            event.set()
        if waiter is not None and not waiter.done():
            _waker_for_waiter(waiter).wake(waiter)
        if callbacks:
            for callback in callbacks:
                self._run_callback(callback)

    def _run_callback(self, callback: Callable[[BridgeFuture[T]], None]) -> None:
        try:
            callback(self)
        except Exception:
            # One bad listener must not kill the actor thread that completed the future.
            logger.exception("done-callback %r of %r failed", callback, self)

    def _result(self) -> T:
        if self._state == _ERROR:
            assert self._exc_info is not None
            exc_type, exc_value, traceback = self._exc_info
            if exc_value is None:
                assert exc_type is not None
                exc_value = exc_type()
            raise exc_value.with_traceback(traceback)
        value: T = self._value
        return value


def _waker_for_waiter(waiter: asyncio.Future[None]) -> _LoopWaker:
    global _last_waker  # noqa: PLW0603 - a one-entry cache on the hot path, see below
    loop = waiter.get_loop()
    # Processes run one loop; remembering the last waker skips a WeakKeyDictionary lookup
    # (a Python-level call) per completion. Reading/replacing one reference is atomic.
    last = _last_waker
    if last is not None and last._loop is loop:
        return last
    waker = _wakers.get(loop)
    if waker is None:
        # Actor threads may race here; dict.setdefault is atomic, so all of them share one.
        waker = _wakers.setdefault(loop, _LoopWaker(loop))
    _last_waker = waker
    return waker


_last_waker: _LoopWaker | None = None
