"""Supervision: one-for-one restarts, queued asks failing fast, intensity, backoff, escalation."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pykka
import pytest
from aioprometheus.collectors import Counter

from actors import (
    ActorMetrics,
    ActorUnavailable,
    BridgedActor,
    ChildContext,
    ChildSpec,
    RestartIntensityExceeded,
    RestartStrategy,
    Runtime,
    Strategy,
    Supervisor,
    ask,
    lookup,
    mailbox_of,
    stop,
    supervisor_spec,
)
from tests.actors.actors_for_tests import Echo, Gated
from tests.actors.conftest import eventually

FAST = RestartStrategy(max_restarts=3, within_seconds=5, backoff_initial_seconds=0.001)


class CrashOnStart(BridgedActor):
    """Fails in on_start, every time: a child that cannot come up."""

    def on_start(self) -> None:
        raise RuntimeError("cannot start")


class Starts:
    """A factory that records when each incarnation started."""

    def __init__(self, make: Callable[[ChildContext], pykka.ActorRef[Any]]) -> None:
        self.make = make
        self.times: list[float] = []
        self.refs: list[pykka.ActorRef[Any]] = []

    def __call__(self, ctx: ChildContext) -> pykka.ActorRef[Any]:
        self.times.append(time.monotonic())
        ref = self.make(ctx)
        self.refs.append(ref)
        return ref


async def test_crash_with_queued_asks_restarts_and_fails_them_fast(
    gate: threading.Event, caplog: pytest.LogCaptureFixture
) -> None:
    runtime = Runtime(asyncio.get_running_loop(), ActorMetrics())
    starts = Starts(lambda ctx: Gated.start(gate, runtime=ctx.runtime))
    sup = Supervisor.start("test", [ChildSpec("worker", starts)], strategy=FAST, runtime=runtime)
    try:
        first = await lookup(sup, "worker")
        blocked = first.ask("wait", block=False)  # keeps the actor busy
        first.tell("crash")  # a failed tell kills a pykka actor
        queued = [first.ask(i, block=False) for i in range(20)]
        started = time.monotonic()
        gate.set()
        assert await blocked == "opened"
        results = await asyncio.gather(*(ask_future(f) for f in queued), return_exceptions=True)
        assert all(isinstance(r, ActorUnavailable) for r in results), results
        assert time.monotonic() - started < 1.0  # failed at once, not at some timeout

        await eventually(lambda: len(starts.refs) == 2)
        second = await lookup(sup, "worker")
        assert second is starts.refs[1]
        assert second.actor_urn != first.actor_urn
        assert await ask(second, "ping") == "ping"
        assert "restarting child 'worker'" in caplog.text
        assert "crash requested" in caplog.text
        restarts = runtime.metrics.restarts if runtime.metrics else None
        assert isinstance(restarts, Counter)
        assert restarts.get({"kind": "Gated", "cause": "RuntimeError"}) == 1
    finally:
        await stop(sup, drain_seconds=5)
    assert not pykka.ActorRegistry.get_all()


async def ask_future(future: Any) -> Any:
    return await future


async def test_restart_intensity_exceeded_escalates_to_the_root_callback() -> None:
    escalations: list[RestartIntensityExceeded] = []
    starts = Starts(lambda ctx: CrashOnStart.start(runtime=ctx.runtime))
    strategy = RestartStrategy(max_restarts=2, within_seconds=5, backoff_initial_seconds=0.001)
    sup = Supervisor.start(
        "root",
        [ChildSpec("doomed", starts)],
        strategy=strategy,
        on_escalate=escalations.append,
    )
    await eventually(lambda: bool(escalations))
    await eventually(mailbox_of(sup).terminated.done)
    assert len(starts.times) == 3  # the first start and two restarts; the third failure escalates
    exc = escalations[0]
    assert exc.supervisor == "root"
    assert exc.child == "doomed"
    assert isinstance(exc.__cause__, RuntimeError)
    termination = mailbox_of(sup).terminated.result()
    assert isinstance(termination.cause, RestartIntensityExceeded)
    assert not pykka.ActorRegistry.get_all()


async def test_escalation_restarts_the_subtree_under_the_parent() -> None:
    inner = Starts(lambda ctx: CrashOnStart.start(runtime=ctx.runtime))
    strategy = RestartStrategy(max_restarts=1, within_seconds=5, backoff_initial_seconds=0.001)
    subtree = supervisor_spec("inner", [ChildSpec("doomed", inner)], strategy=strategy)
    outer_strategy = RestartStrategy(
        max_restarts=2, within_seconds=5, backoff_initial_seconds=0.001
    )
    escalations: list[RestartIntensityExceeded] = []
    root = Supervisor.start(
        "outer", [subtree], strategy=outer_strategy, on_escalate=escalations.append
    )
    # inner gives up after 2 starts; outer restarts inner twice, then gives up itself.
    await eventually(lambda: bool(escalations))
    await eventually(mailbox_of(root).terminated.done)
    assert escalations[0].supervisor == "outer"
    assert escalations[0].child == "inner"
    assert len(inner.times) == 6
    assert not pykka.ActorRegistry.get_all()


async def test_backoff_grows_between_restarts() -> None:
    starts = Starts(lambda ctx: CrashOnStart.start(runtime=ctx.runtime))
    strategy = RestartStrategy(
        max_restarts=4, within_seconds=10, backoff_initial_seconds=0.05, backoff_factor=2.0
    )
    escalations: list[RestartIntensityExceeded] = []
    sup = Supervisor.start(
        "backoff",
        [ChildSpec("doomed", starts)],
        strategy=strategy,
        runtime=Runtime(asyncio.get_running_loop()),
        on_escalate=escalations.append,
    )
    await eventually(lambda: bool(escalations))
    await eventually(mailbox_of(sup).terminated.done)
    gaps = [b - a for a, b in zip(starts.times, starts.times[1:], strict=False)]
    expected = [0.05, 0.1, 0.2, 0.4]
    assert len(gaps) == 4
    for gap, want in zip(gaps, expected, strict=True):
        assert want * 0.9 <= gap < want + 0.25, (gaps, expected)


async def test_a_normal_exit_of_a_transient_child_is_not_restarted() -> None:
    starts = Starts(lambda ctx: Echo.start(runtime=ctx.runtime))
    sup = Supervisor.start("t", [ChildSpec("once", starts, restart="transient")], strategy=FAST)
    try:
        child = await lookup(sup, "once")
        await stop(child, drain_seconds=2)
        deadline = time.monotonic() + 2
        while "once" in await sup.proxy().children():
            assert time.monotonic() < deadline
            await asyncio.sleep(0.005)
        # Proving an absence needs a bounded wait: 50x the 1 ms backoff a restart would take.
        await asyncio.sleep(0.05)
        with pytest.raises(ActorUnavailable):
            await lookup(sup, "once")
        assert len(starts.times) == 1
    finally:
        await stop(sup, drain_seconds=2)


async def test_a_normal_exit_of_a_permanent_child_is_restarted() -> None:
    starts = Starts(lambda ctx: Echo.start(runtime=ctx.runtime))
    sup = Supervisor.start("p", [ChildSpec("always", starts)], strategy=FAST)
    try:
        await stop(await lookup(sup, "always"), drain_seconds=2)
        await eventually(lambda: len(starts.refs) == 2)
        assert await ask(await lookup(sup, "always"), "back") == "back"
    finally:
        await stop(sup, drain_seconds=2)


async def test_children_find_each_other_through_the_directory() -> None:
    class Caller(BridgedActor):
        def __init__(self, ctx: ChildContext) -> None:
            super().__init__(runtime=ctx.runtime)
            self.directory = ctx.directory

        def on_receive(self, message: Any) -> Any:
            # Actor thread: a blocking ask to a sibling is fine here (never upward).
            return self.directory.require("echo").ask(message, timeout=1)

    sup = Supervisor.start(
        "pair",
        [
            ChildSpec("echo", lambda ctx: Echo.start(runtime=ctx.runtime)),
            ChildSpec("caller", Caller.start),
        ],
    )
    try:
        caller = await lookup(sup, "caller")
        assert await ask(caller, "hello") == "hello"
        assert set(await sup.proxy().children()) == {"echo", "caller"}
    finally:
        await stop(sup, drain_seconds=2)


async def test_stopping_a_supervisor_stops_children_first(
    caplog: pytest.LogCaptureFixture,
) -> None:
    order: list[str] = []

    class Recorder(BridgedActor):
        def __init__(self, name: str) -> None:
            super().__init__()
            self.name = name

        def on_stop(self) -> None:
            order.append(self.name)

    class RecordingSupervisor(Supervisor):
        def on_stop(self) -> None:
            super().on_stop()
            order.append(self.name)

    def child(name: str) -> ChildSpec:
        return ChildSpec(name, lambda ctx: Recorder.start(name))

    sup = RecordingSupervisor.start("parent", [child("a"), child("b"), child("c")])
    caplog.set_level(logging.DEBUG)
    await asyncio.sleep(0)
    assert await stop(sup, drain_seconds=5)
    assert order == ["c", "b", "a", "parent"]


def test_one_for_all_is_named_but_not_built_yet() -> None:
    with pytest.raises(NotImplementedError):
        RestartStrategy(strategy=Strategy.ONE_FOR_ALL)
