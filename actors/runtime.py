"""The asyncio bridge: actors whose futures an event loop can await, and the helpers around them.

Rules this module enforces (ARCHITECTURE.md, "Actors and asyncio"):
- the loop awaits actors (`await ask(ref, msg)`), it never blocks on them;
- an actor that needs async I/O submits a coroutine to the loop and waits on its own thread
  (`self.run_on_loop(coro, timeout)`), never the reverse.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import logging
import math
import threading
import time
import weakref
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, cast

import pykka
from pykka import messages
from pykka._envelope import Envelope

from actors.errors import ActorTimeout, ActorUnavailable
from actors.future import BridgeFuture
from actors.mailbox import Mailbox, Termination
from actors.starter import starter

if TYPE_CHECKING:
    from types import TracebackType

    from actors.metrics import ActorMetrics

__all__ = [
    "DEFAULT_ASK_TIMEOUT",
    "BridgedActor",
    "Runtime",
    "ask",
    "kind_of",
    "mailbox_of",
    "run_on_loop",
    "stop",
    "stop_from_thread",
    "wait_concurrent",
    "wait_threads",
]

T = TypeVar("T")

logger = logging.getLogger(__name__)

DEFAULT_ASK_TIMEOUT = 5.0
START_AFTER_TIMEOUT = 10.0

_thread_counter = itertools.count()


@dataclass(frozen=True)
class Runtime:
    """What the actors of one system share: the event loop they bridge to, and metrics."""

    loop: asyncio.AbstractEventLoop
    metrics: ActorMetrics | None = None


class BridgedActor(pykka.ThreadingActor):
    """Base class for every Mitra actor.

    Compared with `pykka.ThreadingActor`:
    - its futures are `BridgeFuture`s, so `await ref.ask(msg, block=False)` and awaited proxy
      calls yield to the event loop instead of blocking it;
    - its inbox is a `Mailbox`: asks that cannot be delivered any more fail at once with
      `ActorStopped` (an `ActorUnavailable`) instead of hanging;
    - `mailbox.terminated` resolves with a `Termination` (cause included) when the thread ends,
      which is how supervisors and pools watch actors without asking them;
    - `run_on_loop()` runs a coroutine on the event loop from the actor's thread.

    Subclasses take `runtime` as a keyword argument and pass it to `super().__init__()`.

    `start_after`: a future (usually a predecessor's `mailbox.terminated`) to wait for on the
    actor's own thread before `on_start`.
    """

    kind: ClassVar[str] = ""
    """Label for logs and metrics; defaults to the class name."""

    def __init__(
        self, *, runtime: Runtime | None = None, start_after: BridgeFuture[Any] | None = None
    ) -> None:
        super().__init__()
        self._start_after = start_after
        if runtime is None:
            # Started from the loop thread (the common case), the loop is known anyway.
            loop = asyncio._get_running_loop()
            runtime = Runtime(loop) if loop is not None else None
        self.runtime = runtime
        self._failure: BaseException | None = None
        self.mailbox.urn = self.actor_urn

    @classmethod
    def actor_kind(cls) -> str:
        return cls.kind or cls.__name__

    @property
    def mailbox(self) -> Mailbox:
        return cast("Mailbox", self.actor_inbox)

    # ---- pykka hooks (pykka 4.x internals; setup.cfg pins pykka < 5) --------------------------

    @staticmethod
    def _create_actor_inbox() -> Mailbox:
        return Mailbox()

    @staticmethod
    def _create_future() -> BridgeFuture[Any]:
        return BridgeFuture()

    def _start_actor_loop(self) -> None:
        thread = threading.Thread(
            target=self._actor_loop,
            name=f"{self.actor_kind()}-{next(_thread_counter)}",
            daemon=self.use_daemon_thread,
        )
        self.mailbox.thread = thread
        if self.runtime is not None and self.runtime.metrics is not None:
            self.runtime.metrics.actor_started(self.actor_kind())
        if asyncio._get_running_loop() is not None:
            # On the loop: hand the (blocking) thread start to a helper. The ref is usable
            # at once; messages wait in the mailbox until the thread runs.
            starter.submit(thread, self._could_not_start)
        else:
            thread.start()

    def _could_not_start(self, exc: BaseException) -> None:
        # The thread never ran: die as if on_start had failed, so asks fail and watchers see it.
        pykka.ActorRegistry.unregister(self.actor_ref)
        self._failure = exc
        self.actor_stopped.set()
        self._actor_loop_teardown()

    def _actor_loop_setup(self) -> None:
        if self._start_after is not None:
            # A passivating predecessor (same key) may still be finishing its last messages;
            # wait for it on this thread so the new incarnation reads its final state.
            try:
                self._start_after.get(timeout=START_AFTER_TIMEOUT)
            except pykka.Timeout:
                logger.warning("%s: predecessor still running after %ss", self, START_AFTER_TIMEOUT)
            except Exception:  # noqa: S110 - how the predecessor died is its watcher's business
                pass
            self._start_after = None
        super()._actor_loop_setup()

    def _handle_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # pykka funnels every fatal error (on_start, a failed tell, on_stop, on_failure)
        # through here; remember the first one as the cause of death.
        if self._failure is None:
            if exception_value is None and exception_type is not None:
                exception_value = exception_type()
            self._failure = exception_value
        super()._handle_failure(exception_type, exception_value, traceback)

    def _actor_loop_teardown(self) -> None:
        crashed = self._failure is not None
        dropped = self.mailbox.close(crashed=crashed)
        if dropped:
            logger.warning(
                "%s %s with %d queued message(s); their asks now fail with ActorUnavailable",
                self,
                "crashed" if crashed else "stopped",
                dropped,
            )
        kind = self.actor_kind()
        if self.runtime is not None and self.runtime.metrics is not None:
            self.runtime.metrics.actor_stopped(kind, self._failure)
        self.mailbox.terminated.set(Termination(self.actor_urn, kind, self._failure))

    # ---- async I/O from the actor's thread ---------------------------------------------------

    def run_on_loop(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run `coro` on the event loop and wait for its result on this (actor) thread."""
        loop = self.runtime.loop if self.runtime is not None else None
        return run_on_loop(loop, coro, timeout)


def run_on_loop(
    loop: asyncio.AbstractEventLoop | None, coro: Coroutine[Any, Any, T], timeout: float
) -> T:
    """Submit `coro` to `loop` and block this thread (never a loop thread) for its result.

    Raises RuntimeError when called on an event-loop thread (it would deadlock: the loop
    would wait for itself), `ActorUnavailable` when the loop is not running, and
    `ActorTimeout` (after cancelling the coroutine) when it takes longer than `timeout`.
    """
    if asyncio._get_running_loop() is not None:
        coro.close()
        raise RuntimeError("run_on_loop() called on an event-loop thread; it would deadlock")
    if loop is None or loop.is_closed() or not loop.is_running():
        coro.close()
        raise ActorUnavailable("the event loop is not running")
    name = getattr(coro, "__qualname__", repr(coro))
    future = asyncio.run_coroutine_threadsafe(coro, loop)
    try:
        return future.result(timeout)
    except concurrent.futures.TimeoutError:
        if future.done():
            raise  # the coroutine itself raised TimeoutError
        future.cancel()
        raise ActorTimeout(
            f"coroutine {name} did not finish on the event loop within {timeout:g}s"
        ) from None


# ---- helpers for the event-loop side ---------------------------------------------------------


def mailbox_of(ref: pykka.ActorRef[Any]) -> Mailbox:
    """The `Mailbox` of a `BridgedActor` ref (reachable through pykka's public `actor_inbox`)."""
    inbox = ref.actor_inbox
    if not isinstance(inbox, Mailbox):
        raise TypeError(f"{ref} is not a BridgedActor; the loop cannot await it")
    return inbox


def kind_of(ref: pykka.ActorRef[Any]) -> str:
    actor_class = ref.actor_class
    if issubclass(actor_class, BridgedActor):
        return actor_class.actor_kind()
    return actor_class.__name__


def _describe(message: Any) -> str:
    if isinstance(message, messages.ProxyCall):
        return f"call {'.'.join(message.attr_path)}()"
    return type(message).__name__


async def ask(
    ref: pykka.ActorRef[Any],
    message: Any,
    *,
    timeout: float = DEFAULT_ASK_TIMEOUT,  # noqa: ASYNC109 - becomes a domain ActorTimeout
    metrics: ActorMetrics | None = None,
) -> Any:
    """Ask `ref` from the event loop and await the answer without blocking the loop.

    Raises `ActorTimeout` after `timeout` seconds (the actor may still handle the message
    later: asks are not cancellable across threads), `ActorUnavailable` (`ActorStopped`) if
    the actor is or becomes dead, or whatever the actor's handler raised.
    """
    mailbox = ref.actor_inbox
    if not isinstance(mailbox, Mailbox):
        raise TypeError(f"{ref} is not a BridgedActor; the loop cannot await it")
    loop = asyncio.get_running_loop()
    started = loop.time()
    # What pykka's ActorRef.ask(block=False) does, minus its indirections: this is the hot
    # path of every request. A dead actor's mailbox is closed and answers ActorStopped.
    waiter = loop.create_future()
    future: BridgeFuture[Any] = BridgeFuture(waiter)
    mailbox.put(Envelope(message, reply_to=future))
    try:
        if not future.done():
            bucket = _deadlines_for(loop).add(waiter, started + timeout)
            try:
                await waiter
            except TimeoutError:
                raise ActorTimeout(
                    f"{ref} did not answer {_describe(message)} within {timeout:g}s"
                ) from None
            finally:
                bucket.discard(waiter)
        return future.result()
    finally:
        if metrics is not None:
            metrics.ask_observed(kind_of(ref), loop.time() - started)


async def wait_concurrent(
    future: concurrent.futures.Future[T],
    timeout: float,  # noqa: ASYNC109 - the coarse deadlines below, not a timer per call
) -> T:
    """Await a `concurrent.futures.Future` from the event loop (raises TimeoutError).

    `asyncio.wrap_future` hops through `call_soon_threadsafe` even when the future is set on
    the loop's own thread (the chat writer sets its acks there); this resolves in place then,
    and only crosses threads when it must. Cancelling the awaiting task leaves `future` alone,
    so several waiters (a retry of the same send) may share it.
    """
    if future.done():
        return future.result()
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[None] = loop.create_future()

    def wake(_: concurrent.futures.Future[T]) -> None:
        if asyncio._get_running_loop() is loop:
            _set_waiter(waiter)
        else:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                loop.call_soon_threadsafe(_set_waiter, waiter)

    future.add_done_callback(wake)
    bucket = _deadlines_for(loop).add(waiter, loop.time() + timeout)
    try:
        await waiter
    finally:
        bucket.discard(waiter)
    return future.result()


def _set_waiter(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class _Deadlines:
    """Ask timeouts in coarse time buckets: one loop timer per bucket, not one per ask.

    A TimerHandle per ask (what `asyncio.timeout`/`wait_for` create) costs about as much as
    the rest of the round trip. Buckets hold only outstanding waiters (each ask removes its
    own), so memory follows what is in flight. Timeouts fire up to `GRAIN` late.
    """

    GRAIN = 0.01

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._buckets: dict[int, set[asyncio.Future[None]]] = {}

    def add(self, waiter: asyncio.Future[None], deadline: float) -> set[asyncio.Future[None]]:
        slot = math.ceil(deadline / self.GRAIN)
        bucket = self._buckets.get(slot)
        if bucket is None:
            bucket = self._buckets[slot] = set()
            self._loop.call_at(slot * self.GRAIN, self._expire, slot)
        bucket.add(waiter)
        return bucket

    def _expire(self, slot: int) -> None:
        for waiter in self._buckets.pop(slot, ()):
            if not waiter.done():
                waiter.set_exception(TimeoutError())


# Only touched on each loop's own thread.
_deadlines: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Deadlines] = (
    weakref.WeakKeyDictionary()
)
_last_deadlines: _Deadlines | None = None


def _deadlines_for(loop: asyncio.AbstractEventLoop) -> _Deadlines:
    global _last_deadlines  # noqa: PLW0603 - one-entry cache: a process runs one loop
    last = _last_deadlines
    if last is not None and last._loop is loop:
        return last
    deadlines = _deadlines.get(loop)
    if deadlines is None:
        deadlines = _deadlines[loop] = _Deadlines(loop)
    _last_deadlines = deadlines
    return deadlines


async def stop(ref: pykka.ActorRef[Any], *, drain_seconds: float) -> bool:
    """Stop `ref` after it drains its mailbox, from the event loop; True if it terminated.

    Past `drain_seconds` the rest of the mailbox is failed with `ActorStopped` and the actor stops
    after its current message; False if even that does not happen within a short grace.
    """
    mailbox = mailbox_of(ref)
    ref.stop(block=False)  # enqueues pykka's stop behind the pending messages
    if await _wait_terminated(mailbox, drain_seconds):
        return True
    dropped = mailbox.abort()
    logger.warning(
        "%s did not drain within %gs; failed %d queued message(s)", ref, drain_seconds, dropped
    )
    return await _wait_terminated(mailbox, 1.0)


async def _wait_terminated(mailbox: Mailbox, seconds: float) -> bool:
    waiter = mailbox.terminated.waiter()
    if waiter is None:
        return True
    try:
        async with asyncio.timeout(max(seconds, 0.0)):
            await asyncio.shield(waiter)
    except TimeoutError:
        return False
    return True


def stop_from_thread(ref: pykka.ActorRef[Any], *, deadline: float) -> bool:
    """Like `stop()`, for actor threads (supervisors); `deadline` is a `time.monotonic()` value."""
    mailbox = mailbox_of(ref)
    ref.stop(block=False)
    return _join_from_thread(mailbox, deadline)


def _join_from_thread(mailbox: Mailbox, deadline: float) -> bool:
    try:
        mailbox.terminated.get(timeout=max(deadline - time.monotonic(), 0.0))
    except pykka.Timeout:
        dropped = mailbox.abort()
        logger.warning("%s did not drain in time; failed %d message(s)", mailbox.urn, dropped)
        try:
            mailbox.terminated.get(timeout=1.0)
        except pykka.Timeout:
            return False
    return True


async def wait_threads(mailboxes: Iterable[Mailbox], *, within: float) -> bool:
    """Wait (polling, bounded) until the threads behind `mailboxes` have exited.

    `terminated` resolves a moment before the thread returns; a thread count taken right
    after would still include it.
    """
    pending = [m.thread for m in mailboxes if m.thread is not None]
    deadline = time.monotonic() + within
    while True:
        pending = [t for t in pending if t.is_alive()]
        if not pending:
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.002)
