"""ActorSystem: starts with the app, drains within a deadline, stops children first, sweeps."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pykka
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aioprometheus.collectors import Counter, Gauge, Histogram

from actors import (
    Activation,
    ActorSystem,
    ActorUnavailable,
    ChildSpec,
    lookup,
    supervisor_spec,
)
from tests.actors.actors_for_tests import Echo, Sleeper


def echo_spec(name: str) -> ChildSpec:
    return ChildSpec(name, lambda ctx: Echo.start(runtime=ctx.runtime))


def pooled(activation: Activation[Any]) -> pykka.ActorRef[Any]:
    return Echo.start(runtime=activation.runtime, start_after=activation.predecessor)


async def test_shutdown_leaves_no_threads_and_no_actors() -> None:
    baseline = threading.active_count()
    system = ActorSystem(lag_interval_seconds=0.01)
    await system.start()
    await system.spawn(supervisor_spec("tenants", [echo_spec("t1"), echo_spec("t2")]))
    await system.spawn(echo_spec("payments"))
    pool = system.pool("conversation", pooled, idle_timeout_seconds=60)
    assert await asyncio.gather(*(pool.ask(f"c{i}", i) for i in range(50))) == list(range(50))
    tenants = await lookup(system.root, "tenants")
    assert await system.ask(await lookup(tenants, "t2"), "hi") == "hi"
    assert threading.active_count() >= baseline + 50 + 5

    assert await system.stop(deadline_seconds=5)
    assert pykka.ActorRegistry.get_all() == []
    assert threading.active_count() == baseline
    alive = system.metrics.alive
    assert isinstance(alive, Gauge)
    assert all(value == 0 for _, value in alive.get_all())
    system.metrics.publish()  # as /metrics does before it renders
    latency = system.metrics.ask_latency
    assert isinstance(latency, Histogram)
    assert latency.get({"kind": "Echo"})["count"] == 51
    with pytest.raises(ActorUnavailable):
        await system.spawn(echo_spec("late"))


async def test_runs_in_the_aiohttp_cleanup_ctx() -> None:
    baseline = threading.active_count()
    system = ActorSystem()
    app = web.Application()
    app.cleanup_ctx.append(system.cleanup_ctx)
    pools: list[Any] = []

    async def on_startup(app: web.Application) -> None:
        pools.append(system.pool("conversation", pooled))

    app.on_startup.append(on_startup)

    async def echo(request: web.Request) -> web.Response:
        return web.json_response(await pools[0].ask(request.match_info["key"], "pong"))

    app.router.add_get("/echo/{key}", echo)
    async with TestClient(TestServer(app)) as client:
        responses = await asyncio.gather(*(client.get(f"/echo/{i}") for i in range(20)))
        assert [await r.json() for r in responses] == ["pong"] * 20
        assert len(pools[0]) == 20
    assert pykka.ActorRegistry.get_all() == []
    assert threading.active_count() == baseline


async def test_sweep_reports_and_stops_actors_outside_the_tree(
    caplog: pytest.LogCaptureFixture,
) -> None:
    baseline = threading.active_count()
    system = ActorSystem()
    await system.start()
    stray = Echo.start()  # neither supervised nor pooled: a bug the sweep must catch
    assert await system.stop(deadline_seconds=2)
    assert not stray.is_alive()
    assert "still running after shutdown: a bug" in caplog.text
    leaked = system.metrics.leaked
    assert isinstance(leaked, Counter)
    assert leaked.get({"kind": "Echo"}) == 1
    assert threading.active_count() == baseline


async def test_stop_drains_up_to_the_deadline_then_fails_the_rest() -> None:
    system = ActorSystem()
    await system.start()
    slow = await system.spawn(ChildSpec("slow", lambda ctx: Sleeper.start(runtime=ctx.runtime)))
    pending = [slow.ask(0.05, block=False) for _ in range(40)]  # 2 s of work
    started = time.monotonic()
    assert await system.stop(deadline_seconds=0.3)
    assert time.monotonic() - started < 1.5
    results = await asyncio.gather(*(_await(f) for f in pending), return_exceptions=True)
    done = [r for r in results if r == "slept"]
    failed = [r for r in results if isinstance(r, ActorUnavailable)]
    assert done, "messages within the deadline are handled"
    assert failed, "messages past the deadline fail instead of hanging"
    assert len(done) + len(failed) == 40


async def _await(future: Any) -> Any:
    return await future
