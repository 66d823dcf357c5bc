"""Virtual actors: single activation, LRU cap, idle passivation, transparent re-activation."""

from __future__ import annotations

import asyncio
import threading
import uuid
from typing import Any

import pykka
import pytest

from actors import (
    Activation,
    ActorMetrics,
    ActorPool,
    ActorUnavailable,
    BridgedActor,
    Runtime,
    mailbox_of,
)
from tests.actors.conftest import eventually


class Keyed(BridgedActor):
    """A stand-in for a conversation actor: counts what it handled since activation."""

    def __init__(self, activation: Activation[Any], final: dict[Any, int]) -> None:
        super().__init__(runtime=activation.runtime, start_after=activation.predecessor)
        self.key = activation.key
        self.handled = 0
        self.final = final

    def on_stop(self) -> None:
        self.final[self.key] = self.handled

    def on_receive(self, message: Any) -> Any:
        if message == "crash":
            raise RuntimeError("crash requested")
        self.handled += 1
        return (self.key, self.handled, self.actor_urn)


class Factory:
    """Counts activations per key."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.activations: dict[Any, int] = {}
        self.final: dict[Any, int] = {}  # messages each incarnation handled, set as it stops

    def __call__(self, activation: Activation[Any]) -> pykka.ActorRef[Any]:
        with self.lock:
            self.activations[activation.key] = self.activations.get(activation.key, 0) + 1
        return Keyed.start(activation, self.final)


def make_pool(
    factory: Factory, *, idle: float = 60.0, max_live: int = 10_000, clock: Any = None
) -> ActorPool[Any]:
    runtime = Runtime(asyncio.get_running_loop(), ActorMetrics())
    kwargs: dict[str, Any] = {"clock": clock} if clock is not None else {}
    return ActorPool(
        "keyed", factory, runtime=runtime, idle_timeout_seconds=idle, max_live=max_live, **kwargs
    )


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_concurrent_first_uses_activate_one_actor() -> None:
    factory = Factory()
    pool = make_pool(factory)
    key = uuid.uuid4()
    try:
        from_threads: list[pykka.ActorRef[Any]] = []
        start = threading.Barrier(9)

        def hammer() -> None:
            start.wait()
            from_threads.extend(pool.get(key) for _ in range(50))

        threads = [threading.Thread(target=hammer) for _ in range(8)]
        for thread in threads:
            thread.start()
        start.wait()  # releases the threads while the loop fires its own callers
        answers = await asyncio.gather(*(pool.ask(key, i) for i in range(300)))
        await eventually(lambda: not any(t.is_alive() for t in threads))
        assert factory.activations == {key: 1}
        assert len({urn for _, _, urn in answers}) == 1
        assert {ref.actor_urn for ref in from_threads} == {answers[0][2]}
        assert len(pool) == 1
    finally:
        assert await pool.close(drain_seconds=5)


async def test_lru_cap_passivates_least_recently_used_first() -> None:
    factory = Factory()
    pool = make_pool(factory, max_live=3)
    try:
        for key in ["a", "b", "c", "a", "d"]:  # "b" is now the least recently used
            await pool.ask(key, "hi")
        assert set(pool._entries) == {"c", "a", "d"}
        await pool.ask("e", "hi")  # evicts "c"
        assert set(pool._entries) == {"a", "d", "e"}
        # Re-activation is transparent; the new incarnation starts counting afresh.
        key, handled, _ = await pool.ask("b", "again")
        assert (key, handled) == ("b", 1)
        assert factory.activations["b"] == 2
        assert len(pool) == 3
    finally:
        assert await pool.close(drain_seconds=5)


async def test_idle_actors_are_passivated_and_come_back_on_use() -> None:
    factory = Factory()
    clock = FakeClock()
    pool = make_pool(factory, idle=10.0, clock=clock)
    try:
        first = pool.get("k")
        await pool.ask("other", "hi")
        clock.now += 5
        await pool.ask("other", "hi")  # "other" stays fresh
        assert pool.sweep() == 0
        clock.now += 6  # "k" idle for 11 s, "other" for 6 s
        assert pool.sweep() == 1
        assert "k" not in pool
        assert "other" in pool
        await eventually(mailbox_of(first).terminated.done)
        key, handled, urn = await pool.ask("k", "back")
        assert (key, handled) == ("k", 1)
        assert urn != first.actor_urn
    finally:
        assert await pool.close(drain_seconds=5)


async def test_messages_told_before_passivation_are_handled() -> None:
    factory = Factory()
    clock = FakeClock()
    pool = make_pool(factory, idle=1.0, clock=clock)
    try:
        ref = pool.get("k")
        for i in range(200):
            pool.tell("k", i)
        clock.now += 2
        assert pool.sweep() == 1  # the stop is queued behind the 200 tells
        # Use the key again at once: the successor waits (start_after) for its predecessor to
        # finish the 200 tells and stop before it starts and answers.
        _, handled, urn = await pool.ask("k", "after")
        assert (handled, factory.final["k"]) == (1, 200)
        assert urn != ref.actor_urn
        assert mailbox_of(ref).terminated.result().cause is None
    finally:
        assert await pool.close(drain_seconds=5)


async def test_a_crashed_pooled_actor_leaves_and_reactivates() -> None:
    factory = Factory()
    pool = make_pool(factory)
    try:
        ref = pool.get("k")
        pool.tell("k", "crash")
        await eventually(mailbox_of(ref).terminated.done)
        await eventually(lambda: "k" not in pool)
        _, _, urn = await pool.ask("k", "hi")
        assert urn != ref.actor_urn
        assert factory.activations["k"] == 2
    finally:
        assert await pool.close(drain_seconds=5)


async def test_closed_pool_refuses_use() -> None:
    pool = make_pool(Factory())
    await pool.ask("k", 1)
    assert await pool.close(drain_seconds=5)
    with pytest.raises(ActorUnavailable):
        await pool.ask("k", 2)


@pytest.mark.slow
async def test_two_thousand_idle_keys_return_threads_to_baseline() -> None:
    baseline = threading.active_count()
    factory = Factory()
    clock = FakeClock()  # idleness by clock, so slow activation on a busy CI box cannot race it
    pool = make_pool(factory, idle=60.0, clock=clock)
    try:
        pool.start_sweeper(0.02)
        keys = [str(uuid.uuid4()) for _ in range(2000)]
        answers = await asyncio.gather(*(pool.ask(key, "touch") for key in keys))
        assert len(answers) == 2000
        assert len(pool) == 2000
        assert threading.active_count() >= baseline + 2000
        clock.now += 61  # everyone is idle now; the periodic sweep on the loop does the rest
        await eventually(lambda: len(pool) == 0, within=10)
        await eventually(lambda: threading.active_count() == baseline, within=10)
        assert sum(factory.activations.values()) == 2000
    finally:
        assert await pool.close(drain_seconds=5)
    assert threading.active_count() == baseline


async def test_pool_metrics_count_activations_passivations_and_mailboxes(
    gate: threading.Event,
) -> None:
    from aioprometheus.collectors import Counter, Gauge

    from tests.actors.actors_for_tests import Gated

    runtime = Runtime(asyncio.get_running_loop(), ActorMetrics())
    metrics = runtime.metrics
    assert metrics is not None
    clock = FakeClock()
    pool: ActorPool[str] = ActorPool(
        "gated",
        lambda a: Gated.start(gate, runtime=a.runtime),
        runtime=runtime,
        idle_timeout_seconds=10,
        max_live=2,
        clock=clock,
    )
    try:
        pool.tell("a", "wait")  # busy until the gate opens
        for i in range(5):
            pool.tell("a", i)  # five messages queue up behind it
        pool.get("b")
        pool.sweep()
        depth, deepest = metrics.mailbox_depth, metrics.mailbox_depth_max
        assert isinstance(depth, Gauge)
        assert isinstance(deepest, Gauge)
        sampled = deepest.get({"kind": "gated"})
        assert isinstance(sampled, int | float)
        assert sampled >= 5
        alive = metrics.alive
        assert isinstance(alive, Gauge)
        assert alive.get({"kind": "Gated"}) == 2
        gate.set()
        pool.get("c")  # over the cap: "a" is least recently used
        clock.now += 11
        assert pool.sweep() == 2  # "b" and "c" idle
        activations, passivations = metrics.activations, metrics.passivations
        assert isinstance(activations, Counter)
        assert isinstance(passivations, Counter)
        assert activations.get({"kind": "gated"}) == 3
        assert passivations.get({"kind": "gated", "reason": "lru"}) == 1
        assert passivations.get({"kind": "gated", "reason": "idle"}) == 2
    finally:
        gate.set()
        assert await pool.close(drain_seconds=5)
    assert alive.get({"kind": "Gated"}) == 0
