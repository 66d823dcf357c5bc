"""A supervisor actor: starts children from factories, restarts them, escalates past a limit.

pykka's rules shape this design: an exception in a `tell` kills the actor and calls
`on_failure` (not `on_stop`), and a stopped actor cannot restart, so a restart is a fresh
actor from the child's factory. Children are watched through their mailbox's `terminated`
future, whose callback `tell`s the supervisor: events go up with `tell`, never `ask`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

import pykka

from actors.directory import Directory
from actors.errors import ActorUnavailable, RestartIntensityExceeded
from actors.runtime import BridgedActor, Runtime, kind_of, mailbox_of, stop_from_thread

if TYPE_CHECKING:
    from types import TracebackType

    from actors.future import BridgeFuture
    from actors.mailbox import Termination

__all__ = [
    "ChildContext",
    "ChildSpec",
    "RestartStrategy",
    "Strategy",
    "Supervisor",
    "lookup",
    "supervisor_spec",
]

logger = logging.getLogger(__name__)

Restart = Literal["permanent", "transient", "temporary"]


class Strategy(StrEnum):
    """Which children a failure restarts."""

    ONE_FOR_ONE = "one_for_one"
    """Only the failed child."""
    ONE_FOR_ALL = "one_for_all"
    """Every child, in start order (reserved: not implemented yet)."""


@dataclass(frozen=True)
class RestartStrategy:
    """How a supervisor reacts to failures.

    At most `max_restarts` restarts within `within_seconds` (across all children), else the
    supervisor escalates. The n-th recent restart of one child waits
    `backoff_initial_seconds * backoff_factor**(n-1)`, capped at `backoff_max_seconds`.
    """

    strategy: Strategy = Strategy.ONE_FOR_ONE
    max_restarts: int = 3
    within_seconds: float = 5.0
    backoff_initial_seconds: float = 0.01
    backoff_factor: float = 2.0
    backoff_max_seconds: float = 1.0

    def __post_init__(self) -> None:
        if self.strategy is not Strategy.ONE_FOR_ONE:
            raise NotImplementedError(f"supervisor strategy {self.strategy.value} is not built yet")
        if self.max_restarts < 0 or self.within_seconds <= 0:
            raise ValueError("max_restarts must be >= 0 and within_seconds > 0")

    def backoff(self, attempt: int) -> float:
        """Delay before restart number `attempt` (1-based) of one child."""
        delay = self.backoff_initial_seconds * self.backoff_factor ** max(attempt - 1, 0)
        return min(delay, self.backoff_max_seconds)


@dataclass(frozen=True)
class ChildContext:
    """What a child factory receives: its name, its supervisor, its siblings, the runtime."""

    name: str
    supervisor: pykka.ActorRef[Supervisor]
    directory: Directory
    runtime: Runtime | None


ChildFactory = Callable[[ChildContext], pykka.ActorRef[Any]]


@dataclass(frozen=True)
class ChildSpec:
    """One supervised child.

    `factory` must start and return a fresh actor each call (typically
    `lambda ctx: MyActor.start(..., runtime=ctx.runtime)`); it runs on the supervisor's
    thread. `restart`: "permanent" restarts after any exit, "transient" only after a failure,
    "temporary" never.
    """

    name: str
    factory: ChildFactory
    restart: Restart = "permanent"


@dataclass(frozen=True)
class _ChildExited:
    name: str
    termination: Termination


@dataclass(frozen=True)
class _RestartDue:
    name: str


@dataclass(frozen=True)
class _ShutdownBy:
    deadline: float  # time.monotonic()


@dataclass
class _ChildState:
    spec: ChildSpec
    ref: pykka.ActorRef[Any] | None = None
    kind: str = ""
    restarts: deque[float] = field(default_factory=deque)


class Supervisor(BridgedActor):
    """Supervises children one-for-one with a restart-intensity limit and backoff.

    Past the limit it stops its children and escalates: it calls `on_escalate` (give one at
    the root) and then fails itself with `RestartIntensityExceeded`, which its own parent
    sees as a failed child. Children find each other through `directory` (also passed to
    their factories); outsiders may `lookup()` through the proxy.
    """

    def __init__(
        self,
        name: str,
        children: Sequence[ChildSpec] = (),
        *,
        strategy: RestartStrategy | None = None,
        runtime: Runtime | None = None,
        on_escalate: Callable[[RestartIntensityExceeded], None] | None = None,
        shutdown_timeout: float = 5.0,
    ) -> None:
        super().__init__(runtime=runtime)
        self.name = name
        self.strategy = strategy or RestartStrategy()
        self.directory = Directory()
        self._initial = list(children)
        self._children: dict[str, _ChildState] = {}
        self._restart_times: deque[float] = deque()
        self._on_escalate = on_escalate
        self._shutdown_timeout = shutdown_timeout
        self._deadline: float | None = None
        self._stopping = False

    # ---- lifecycle ---------------------------------------------------------------------------

    def on_start(self) -> None:
        for spec in self._initial:
            self._add(spec)

    def on_stop(self) -> None:
        self._stop_children()

    def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop_children()

    # ---- public API (call through the proxy) ------------------------------------------------

    def start_child(self, spec: ChildSpec) -> pykka.ActorRef[Any]:
        """Start and supervise a new child; its name must be unique under this supervisor."""
        return self._add(spec)

    def stop_child(self, name: str) -> bool:
        """Stop a child for good (no restart); False if there was no such child."""
        state = self._children.pop(name, None)
        if state is None:
            return False
        self.directory.discard(name)
        if state.ref is not None:
            stop_from_thread(state.ref, deadline=time.monotonic() + self._shutdown_timeout)
        return True

    def lookup(self, name: str) -> pykka.ActorRef[Any] | None:
        return self.directory.lookup(name)

    def children(self) -> dict[str, pykka.ActorRef[Any]]:
        return self.directory.snapshot()

    # ---- internal messages (always told, never asked) ---------------------------------------

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _ChildExited):
            self._child_exited(message.name, message.termination)
        elif isinstance(message, _RestartDue):
            self._restart_due(message.name)
        elif isinstance(message, _ShutdownBy):
            self._deadline = message.deadline
        else:
            return super().on_receive(message)
        return None

    # ---- internals ---------------------------------------------------------------------------

    def _add(self, spec: ChildSpec) -> pykka.ActorRef[Any]:
        if spec.name in self._children:
            raise ValueError(f"supervisor {self.name!r} already has a child {spec.name!r}")
        state = self._children[spec.name] = _ChildState(spec)
        try:
            return self._spawn(state)
        except BaseException:
            del self._children[spec.name]
            raise

    def _spawn(self, state: _ChildState) -> pykka.ActorRef[Any]:
        name = state.spec.name
        ctx = ChildContext(name, self.actor_ref, self.directory, self.runtime)
        ref = state.spec.factory(ctx)
        state.ref = ref
        state.kind = kind_of(ref)
        self.directory.set(name, ref)
        # The callback runs on the child's thread as it dies and only tells: never blocks.
        mailbox_of(ref).terminated.add_done_callback(partial(self._notify_exit, name))
        return ref

    def _notify_exit(self, name: str, terminated: BridgeFuture[Termination]) -> None:
        # If we are gone too, our own teardown already dealt with the children.
        with contextlib.suppress(pykka.ActorDeadError):
            self.actor_ref.tell(_ChildExited(name, terminated.result()))

    def _child_exited(self, name: str, termination: Termination) -> None:
        state = self._children.get(name)
        if self._stopping or state is None or state.ref is None:
            return
        if state.ref.actor_urn != termination.urn:
            return  # an older incarnation; already replaced
        state.ref = None
        self.directory.discard(name, termination.urn)
        restart = state.spec.restart
        if restart == "temporary" or (restart == "transient" and not termination.failed):
            del self._children[name]
            logger.info("child %r of %r exited (%s); not restarted", name, self.name, restart)
            return
        self._schedule_restart(state, termination.kind, termination.cause)

    def _schedule_restart(self, state: _ChildState, kind: str, cause: BaseException | None) -> None:
        name = state.spec.name
        now = time.monotonic()
        window_start = now - self.strategy.within_seconds
        for times in (self._restart_times, state.restarts):
            while times and times[0] < window_start:
                times.popleft()
        if len(self._restart_times) >= self.strategy.max_restarts:
            self._escalate(name, cause)
        self._restart_times.append(now)
        state.restarts.append(now)
        attempt = len(state.restarts)
        delay = self.strategy.backoff(attempt)
        cause_name = type(cause).__name__ if cause is not None else "exit"
        logger.warning(
            "supervisor %r: restarting child %r in %.3fs (restart %d/%d within %gs), cause: %r",
            self.name,
            name,
            delay,
            len(self._restart_times),
            self.strategy.max_restarts,
            self.strategy.within_seconds,
            cause,
        )
        if self.runtime is not None and self.runtime.metrics is not None:
            self.runtime.metrics.restarted(kind, cause_name)
        self._after(delay, _RestartDue(name))

    def _restart_due(self, name: str) -> None:
        state = self._children.get(name)
        if self._stopping or state is None or state.ref is not None:
            return
        try:
            self._spawn(state)
        except Exception as exc:
            logger.exception("supervisor %r: factory of child %r failed", self.name, name)
            self._schedule_restart(state, state.kind or name, exc)

    def _after(self, delay: float, message: Any) -> None:
        """Tell ourselves `message` after `delay`, without sleeping on this thread."""
        if delay <= 0:
            self.actor_ref.tell(message)
            return
        loop = self.runtime.loop if self.runtime is not None else None
        if loop is not None and loop.is_running():
            try:
                loop.call_soon_threadsafe(loop.call_later, delay, self._tell_self, message)
                return
            except RuntimeError:
                pass  # the loop closed between the check and the call
        timer = threading.Timer(delay, self._tell_self, (message,))
        timer.daemon = True
        timer.start()

    def _tell_self(self, message: Any) -> None:
        with contextlib.suppress(pykka.ActorDeadError):
            self.actor_ref.tell(message)

    def _escalate(self, child: str, cause: BaseException | None) -> None:
        exc = RestartIntensityExceeded(
            self.name, child, self.strategy.max_restarts, self.strategy.within_seconds
        )
        exc.__cause__ = cause
        logger.error("%s", exc)
        self._stop_children()
        if self._on_escalate is not None:
            try:
                self._on_escalate(exc)
            except Exception:
                logger.exception("escalation callback of supervisor %r failed", self.name)
        # Raised from a told message, this kills the supervisor: its parent sees a failure.
        raise exc

    def _stop_children(self) -> None:
        """Stop children in reverse start order (children before parents), within the deadline."""
        if self._stopping:
            return
        self._stopping = True
        deadline = self._deadline or time.monotonic() + self._shutdown_timeout
        for name in reversed(list(self._children)):
            ref = self._children[name].ref
            self.directory.discard(name)
            if ref is None:
                continue
            if issubclass(ref.actor_class, Supervisor):
                try:
                    ref.tell(_ShutdownBy(deadline))  # grandchildren share our deadline
                except pykka.ActorDeadError:
                    continue
            if not stop_from_thread(ref, deadline=deadline):
                logger.error("supervisor %r: child %r (%s) did not stop", self.name, name, ref)
        self._children.clear()


def supervisor_spec(
    name: str,
    children: Sequence[ChildSpec],
    *,
    strategy: RestartStrategy | None = None,
    restart: Restart = "permanent",
) -> ChildSpec:
    """A `ChildSpec` for a nested supervisor (a subtree restarted as one unit)."""

    def factory(ctx: ChildContext) -> pykka.ActorRef[Any]:
        return Supervisor.start(name, children, strategy=strategy, runtime=ctx.runtime)

    return ChildSpec(name, factory, restart)


async def lookup(supervisor: pykka.ActorRef[Supervisor], name: str) -> pykka.ActorRef[Any]:
    """From the event loop: the child `name` of `supervisor`, or `ActorUnavailable`."""
    ref = await supervisor.proxy().lookup(name)
    if ref is None:
        raise ActorUnavailable(f"actor {name!r} is not running under {kind_of(supervisor)}")
    if not isinstance(ref, pykka.ActorRef):
        raise TypeError(f"unexpected lookup result {ref!r}")
    return ref
