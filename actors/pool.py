"""Virtual actors: one actor per key, activated on first use, passivated when idle or evicted."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from functools import partial
from typing import Any, Generic, TypeVar

import pykka

from actors.errors import ActorStopped, ActorUnavailable
from actors.future import BridgeFuture
from actors.mailbox import Mailbox, Termination
from actors.runtime import DEFAULT_ASK_TIMEOUT, Runtime, ask, mailbox_of, wait_threads
from actors.starter import starter

__all__ = ["Activation", "ActorPool"]

K = TypeVar("K", bound=Hashable)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Activation(Generic[K]):
    """What a pool's factory receives to start the actor for `key`.

    Pass `runtime` and `predecessor` on to `BridgedActor.__init__` (as `runtime=` and
    `start_after=`): the new incarnation then starts only after the previous one for the
    same key has finished its last messages.
    """

    key: K
    runtime: Runtime | None
    predecessor: BridgeFuture[Termination] | None


@dataclass(slots=True)
class _Entry:
    ref: pykka.ActorRef[Any]
    mailbox: Mailbox
    last_used: float
    inflight: int = 0


class ActorPool(Generic[K]):
    """A registry of keyed actors (conversations, …) that exist only while they are used.

    - `get`/`ask`/`tell` activate the key's actor on first use: under one lock, so any number
      of concurrent first uses (from the loop or from actor threads) start exactly one actor.
    - `sweep()` (run periodically on the loop by `start_sweeper`) stops actors idle for longer
      than `idle_timeout_seconds`; activating beyond `max_live` stops the least recently used.
    - A message given to the pool before a passivation decision is queued ahead of the stop
      and handled; after it, the key is re-activated. Callers never see passivation.
    - A crashed actor leaves the pool (its pending asks fail with `ActorUnavailable`); the
      next use activates a fresh one, which rebuilds its state from durable storage.

    The factory runs under the pool lock, on the caller's thread: it must only call
    `SomeActor.start(...)`; loading state belongs in the actor's `on_start`.
    """

    def __init__(
        self,
        kind: str,
        factory: Callable[[Activation[K]], pykka.ActorRef[Any]],
        *,
        runtime: Runtime | None = None,
        idle_timeout_seconds: float = 300.0,
        max_live: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_live < 1 or idle_timeout_seconds <= 0:
            raise ValueError("max_live must be >= 1 and idle_timeout_seconds > 0")
        self.kind = kind
        self.idle_timeout_seconds = idle_timeout_seconds
        self.max_live = max_live
        self._factory = factory
        self._runtime = runtime
        self._metrics = runtime.metrics if runtime is not None else None
        self._clock = clock
        self._lock = threading.Lock()
        # Ordered by last use, least recent first: idle sweeps and LRU eviction read the front.
        self._entries: OrderedDict[K, _Entry] = OrderedDict()
        self._draining: dict[K, Mailbox] = {}  # passivated, thread not yet finished
        self._closed = False
        self._sweeper: asyncio.Task[None] | None = None

    # ---- use ---------------------------------------------------------------------------------

    def get(self, key: K) -> pykka.ActorRef[Any]:
        """The live actor for `key`, activated if needed. Prefer `ask`/`tell`, which are race-free
        with passivation; a ref kept by the caller may be passivated under it."""
        with self._lock:
            return self._acquire(key, inflight=0).ref

    def tell(self, key: K, message: Any) -> None:
        """Deliver `message` to the actor for `key` (activating it) without waiting."""
        with self._lock:
            entry = self._acquire(key, inflight=0)
            # Queued under the lock, so ahead of any stop a later passivation enqueues.
            entry.mailbox.put(_envelope(message))

    async def ask(
        self,
        key: K,
        message: Any,
        *,
        timeout: float = DEFAULT_ASK_TIMEOUT,  # noqa: ASYNC109 - becomes a domain ActorTimeout
    ) -> Any:
        """Ask the actor for `key` (activating it) from the event loop."""
        for attempt in (1, 2):
            with self._lock:
                entry = self._acquire(key, inflight=1)  # in flight: never passivated meanwhile
            try:
                return await ask(entry.ref, message, timeout=timeout, metrics=self._metrics)
            except ActorStopped as exc:
                # Not crashed: the actor stopped itself before our message (it was never
                # handled), so a fresh activation may take it. A crash is the caller's news.
                if exc.crashed or attempt == 2 or self._closed:
                    raise
            finally:
                with self._lock:
                    entry.inflight -= 1
        raise AssertionError("unreachable")  # pragma: no cover

    def live_keys(self) -> list[K]:
        """The keys with a live actor right now (a snapshot; safe from any thread)."""
        with self._lock:
            return list(self._entries)

    def passivate(self, key: K) -> bool:
        """Stop the key's actor after what it has queued (e.g. its partition moved away)."""
        with self._lock:
            if key not in self._entries:
                return False
            self._passivate(key)
        if self._metrics is not None:
            self._metrics.passivated(self.kind, "requested", 1)
        return True

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    # ---- passivation -------------------------------------------------------------------------

    def sweep(self) -> int:
        """Passivate actors idle longer than the timeout; sample mailbox depths. Cheap: O(idle)
        for passivation (entries are kept in last-use order), one pass for the depth gauge."""
        cutoff = self._clock() - self.idle_timeout_seconds
        with self._lock:
            idle: list[K] = []
            for key, entry in self._entries.items():
                if entry.last_used > cutoff:
                    break
                if entry.inflight == 0:
                    idle.append(key)
            for key in idle:
                self._passivate(key)
            live = list(self._entries.values())
        if self._metrics is not None:
            self._metrics.passivated(self.kind, "idle", len(idle))
            depths = [entry.mailbox.qsize() for entry in live]
            self._metrics.mailbox_sample(self.kind, sum(depths), max(depths, default=0))
        return len(idle)

    def start_sweeper(self, interval_seconds: float) -> asyncio.Task[None]:
        """Run `sweep()` every `interval_seconds` on the running loop until `close()`."""
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(
                self._sweep_forever(interval_seconds), name=f"pool-sweeper-{self.kind}"
            )
        return self._sweeper

    async def _sweep_forever(self, interval_seconds: float) -> None:
        while True:
            await asyncio.sleep(interval_seconds)
            try:
                self.sweep()
            except Exception:
                logger.exception("sweep of pool %r failed", self.kind)

    async def close(self, *, drain_seconds: float) -> bool:
        """Stop every actor after it drains its mailbox (bounded), refuse further use.

        Returns True if every actor thread has exited.
        """
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        with self._lock:
            keys = list(self._entries)
            mailboxes = [self._entries[key].mailbox for key in keys]
            mailboxes += list(self._draining.values())
            for key in keys:
                self._passivate(key)
        if self._metrics is not None:
            self._metrics.passivated(self.kind, "shutdown", len(keys))
        deadline = time.monotonic() + drain_seconds
        for mailbox in mailboxes:
            waiter = mailbox.terminated.waiter()
            if waiter is None:
                continue
            try:
                async with asyncio.timeout(max(deadline - time.monotonic(), 0.0)):
                    await asyncio.shield(waiter)
            except TimeoutError:
                dropped = mailbox.abort()
                logger.warning(
                    "pool %r: %s did not drain; failed %d", self.kind, mailbox.urn, dropped
                )
        exited = await wait_threads(mailboxes, within=1.0)
        # Activations from the loop start threads through a helper that lingers briefly.
        return await starter.wait_idle_async(within=2.0) and exited

    # ---- internals (lock held) ---------------------------------------------------------------

    def _acquire(self, key: K, *, inflight: int) -> _Entry:
        if self._closed:
            raise ActorUnavailable(f"the {self.kind} pool is shut down")
        now = self._clock()
        entry = self._entries.get(key)
        if entry is not None and not entry.mailbox.closed and entry.ref.is_alive():
            self._entries.move_to_end(key)
        else:
            if entry is not None:
                del self._entries[key]  # died; its watcher has not run yet
            entry = self._activate(key, now)
        entry.last_used = now
        entry.inflight += inflight
        return entry

    def _activate(self, key: K, now: float) -> _Entry:
        predecessor = self._draining.get(key)
        ref = self._factory(
            Activation(key, self._runtime, predecessor.terminated if predecessor else None)
        )
        mailbox = mailbox_of(ref)
        entry = self._entries[key] = _Entry(ref, mailbox, now)
        mailbox.terminated.add_done_callback(partial(self._on_terminated, key, ref.actor_urn))
        if self._metrics is not None:
            self._metrics.activated(self.kind)
        evicted = 0
        if len(self._entries) > self.max_live:
            excess = len(self._entries) - self.max_live
            victims: list[K] = []
            for other, candidate in self._entries.items():
                if len(victims) == excess:
                    break
                if other != key and candidate.inflight == 0:
                    victims.append(other)
            for other in victims:
                self._passivate(other)
            evicted = len(victims)
        if evicted and self._metrics is not None:
            self._metrics.passivated(self.kind, "lru", evicted)
        return entry

    def _passivate(self, key: K) -> None:
        entry = self._entries.pop(key)
        self._draining[key] = entry.mailbox
        # Non-blocking: enqueues pykka's stop behind whatever the actor still has to handle.
        entry.ref.stop(block=False)

    def _on_terminated(self, key: K, urn: str, terminated: BridgeFuture[Termination]) -> None:
        # Runs on the dying actor's thread.
        termination = terminated.result()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.ref.actor_urn == urn:
                del self._entries[key]
            draining = self._draining.get(key)
            if draining is not None and draining.terminated is terminated:
                del self._draining[key]
        if termination.failed:
            logger.error(
                "pooled %s %r crashed (%r); it re-activates on next use",
                self.kind,
                key,
                termination.cause,
            )


def _envelope(message: Any) -> Any:
    from pykka._envelope import Envelope

    return Envelope(message)
