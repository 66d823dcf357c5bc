"""The actor system's lifecycle: starts with the aiohttp app, stops children-first, then sweeps."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Hashable
from typing import TYPE_CHECKING, Any, TypeVar

import pykka

from actors.errors import ActorUnavailable, RestartIntensityExceeded
from actors.loop_monitor import LoopLagMonitor
from actors.mailbox import Mailbox
from actors.metrics import ActorMetrics
from actors.pool import Activation, ActorPool
from actors.runtime import DEFAULT_ASK_TIMEOUT, Runtime, ask, kind_of, stop, wait_threads
from actors.starter import starter
from actors.supervisor import ChildSpec, RestartStrategy, Supervisor, _ShutdownBy

if TYPE_CHECKING:
    from aiohttp import web
    from aioprometheus.collectors import Registry

__all__ = ["ActorSystem"]

K = TypeVar("K", bound=Hashable)

logger = logging.getLogger(__name__)


def _log_root_escalation(exc: RestartIntensityExceeded) -> None:
    logger.critical("root supervisor gave up: %s; the process needs a restart", exc)


class ActorSystem:
    """Owns the runtime (loop + metrics), the root supervisor, the pools and the lag monitor.

    One per process (the final sweep looks at pykka's process-wide registry). Use it as
    `app.cleanup_ctx.append(system.cleanup_ctx)`, or call `start()` / `stop()`.

    Shutdown order: pools (leaf actors) drain and stop; then the root supervisor stops its
    subtree, children before parents, all within one deadline; then anything still in
    `pykka.ActorRegistry` is logged as a bug and stopped; then it waits for actor threads.
    """

    def __init__(
        self,
        *,
        registry: Registry | None = None,
        strategy: RestartStrategy | None = None,
        on_escalate: Callable[[RestartIntensityExceeded], None] = _log_root_escalation,
        shutdown_seconds: float = 10.0,
        sweep_interval_seconds: float = 1.0,
        lag_interval_seconds: float = 0.25,
    ) -> None:
        self.metrics = ActorMetrics(registry)
        self.loop_monitor = LoopLagMonitor(
            self.metrics.registry, interval_seconds=lag_interval_seconds
        )
        self.shutdown_seconds = shutdown_seconds
        self.sweep_interval_seconds = sweep_interval_seconds
        self._strategy = strategy
        self._on_escalate = on_escalate
        self._runtime: Runtime | None = None
        self._root: pykka.ActorRef[Supervisor] | None = None
        self._pools: list[ActorPool[Any]] = []
        self._stopped = False

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            raise RuntimeError("ActorSystem.start() has not run")
        return self._runtime

    @property
    def root(self) -> pykka.ActorRef[Supervisor]:
        if self._root is None:
            raise RuntimeError("ActorSystem.start() has not run")
        return self._root

    # ---- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        if self._runtime is not None:
            raise RuntimeError("ActorSystem already started")
        self._runtime = Runtime(asyncio.get_running_loop(), self.metrics)
        self._root = Supervisor.start(
            "root", strategy=self._strategy, runtime=self._runtime, on_escalate=self._on_escalate
        )
        self.loop_monitor.start()

    async def stop(self, deadline_seconds: float | None = None) -> bool:
        """Drain and stop everything within `deadline_seconds`; True if no thread is left."""
        if self._runtime is None or self._stopped:
            return True
        self._stopped = True
        deadline = time.monotonic() + (deadline_seconds or self.shutdown_seconds)
        known = _bridged_mailboxes(pykka.ActorRegistry.get_all())

        for pool in reversed(self._pools):  # leaves first: they may still call supervised actors
            await pool.close(drain_seconds=_remaining(deadline))
        root = self._root
        if root is not None and root.is_alive():
            root.tell(_ShutdownBy(deadline))  # the whole subtree shares this deadline
            await stop(root, drain_seconds=_remaining(deadline))

        swept = await self._sweep(deadline)
        await self.loop_monitor.stop()
        clean = await wait_threads(known + swept, within=max(_remaining(deadline), 1.0))
        clean = await starter.wait_idle_async(within=2.0) and clean
        if not clean:
            logger.error("actor threads still alive after shutdown: %s", _alive(known + swept))
        return clean

    async def cleanup_ctx(self, app: web.Application) -> AsyncIterator[None]:
        """For `app.cleanup_ctx`: start with the app, stop with it."""
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    async def _sweep(self, deadline: float) -> list[Mailbox]:
        leaked = pykka.ActorRegistry.get_all()
        for ref in leaked:
            # Every actor must belong to the supervision tree or a pool; this one did not.
            logger.error("actor %s still running after shutdown: a bug; stopping it", ref)
            self.metrics.leak(kind_of(ref))
        bridged = [ref for ref in leaked if isinstance(ref.actor_inbox, Mailbox)]
        await asyncio.gather(
            *(stop(ref, drain_seconds=max(_remaining(deadline), 0.5)) for ref in bridged)
        )
        plain = [ref for ref in leaked if not isinstance(ref.actor_inbox, Mailbox)]
        for ref in plain:
            ref.stop(block=False)  # a plain pykka future cannot be awaited without blocking
        end = time.monotonic() + max(_remaining(deadline), 0.5)
        # Plain actors offer no awaitable end; poll their flag, bounded by the deadline.
        while any(ref.is_alive() for ref in plain) and time.monotonic() < end:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        return _bridged_mailboxes(bridged)

    # ---- building blocks ---------------------------------------------------------------------

    async def spawn(self, spec: ChildSpec, *, timeout: float = DEFAULT_ASK_TIMEOUT) -> Any:  # noqa: ASYNC109
        """Start a supervised child (or subtree, see `supervisor_spec`) under the root."""
        if self._stopped or not self.root.is_alive():
            raise ActorUnavailable("the actor system is stopped")
        async with asyncio.timeout(timeout):
            return await self.root.proxy().start_child(spec)

    def pool(
        self,
        kind: str,
        factory: Callable[[Activation[K]], pykka.ActorRef[Any]],
        *,
        idle_timeout_seconds: float = 300.0,
        max_live: int = 10_000,
    ) -> ActorPool[K]:
        """Create a pool of virtual actors swept on this loop and closed at shutdown."""
        pool: ActorPool[K] = ActorPool(
            kind,
            factory,
            runtime=self.runtime,
            idle_timeout_seconds=idle_timeout_seconds,
            max_live=max_live,
        )
        pool.start_sweeper(self.sweep_interval_seconds)
        self._pools.append(pool)
        return pool

    async def ask(
        self,
        ref: pykka.ActorRef[Any],
        message: Any,
        *,
        timeout: float = DEFAULT_ASK_TIMEOUT,  # noqa: ASYNC109 - becomes a domain ActorTimeout
    ) -> Any:
        """`actors.ask` with this system's latency histogram."""
        return await ask(ref, message, timeout=timeout, metrics=self.metrics)


def _remaining(deadline: float) -> float:
    return max(deadline - time.monotonic(), 0.0)


def _bridged_mailboxes(refs: list[pykka.ActorRef[Any]]) -> list[Mailbox]:
    return [ref.actor_inbox for ref in refs if isinstance(ref.actor_inbox, Mailbox)]


def _alive(mailboxes: list[Mailbox]) -> list[str]:
    return [m.urn for m in mailboxes if m.thread is not None and m.thread.is_alive()]
