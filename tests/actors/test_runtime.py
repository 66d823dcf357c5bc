"""The asyncio bridge: awaiting actors yields to the loop; actors reach the loop safely."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import pykka
import pytest

from actors import (
    ActorStopped,
    ActorTimeout,
    ActorUnavailable,
    BridgedActor,
    BridgeFuture,
    Runtime,
    ask,
    mailbox_of,
    run_on_loop,
    stop,
    wait_concurrent,
)
from tests.actors.actors_for_tests import Echo, Gated, PlainSleeper, Sleeper
from tests.actors.conftest import eventually


class Ticker:
    """Counts loop ticks; a stalled loop shows as a count that does not move."""

    def __init__(self, interval: float = 0.005) -> None:
        self.count = 0
        self.interval = interval

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.count += 1


@pytest.fixture
async def ticker() -> AsyncIterator[Ticker]:
    ticker = Ticker()
    task = asyncio.create_task(ticker.run())
    await asyncio.sleep(0.02)
    yield ticker
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_loop_keeps_ticking_while_actor_sleeps(ticker: Ticker) -> None:
    ref = Sleeper.start()
    try:
        before = ticker.count
        assert await ask(ref, 0.5, timeout=5) == "slept"
        # 0.5 s at one tick per 5 ms is ~100 ticks; a blocked loop would show 0 or 1.
        assert ticker.count - before >= 40
        before = ticker.count
        assert await ref.ask(0.3, block=False) == "slept"  # the raw pykka call path
        assert ticker.count - before >= 20
    finally:
        await stop(ref, drain_seconds=2)


async def test_awaited_proxy_call_yields_to_the_loop(ticker: Ticker) -> None:
    ref = Echo.start()
    try:
        proxy = ref.proxy()
        assert await proxy.echo(7) == 7
        sleeper = Sleeper.start()
        before = ticker.count
        assert await sleeper.proxy().on_receive(0.3) == "slept"
        assert ticker.count - before >= 20
        await stop(sleeper, drain_seconds=2)
    finally:
        await stop(ref, drain_seconds=2)


async def test_plain_pykka_future_stalls_the_loop(ticker: Ticker) -> None:
    """The control: pykka's own Future.__await__ blocks the loop thread in get()."""
    ref = PlainSleeper.start()
    try:
        before = ticker.count
        assert await ref.ask(0.5, block=False) == "slept"
        assert ticker.count - before <= 2
    finally:
        # Outside the ask: stopping a plain actor needs a blocking get, so use a thread.
        stopper = threading.Thread(target=ref.stop)
        stopper.start()
        await eventually(lambda: not stopper.is_alive())


async def test_ask_timeout_raises_actor_timeout(gate: threading.Event) -> None:
    ref = Gated.start(gate)
    try:
        started = time.monotonic()
        with pytest.raises(ActorTimeout, match=r"did not answer str within 0.05s"):
            await ask(ref, "wait", timeout=0.05)
        assert time.monotonic() - started < 1.0
    finally:
        gate.set()
        await stop(ref, drain_seconds=2)


async def test_handler_error_returns_to_caller_and_actor_lives() -> None:
    ref = Echo.start()
    try:
        with pytest.raises(ValueError, match="bad value"):
            await ref.proxy().fail("bad value")
        with pytest.raises(ValueError, match="bad value"):
            await ask(ref, ValueError("bad value"))
        assert ref.is_alive()
        assert await ask(ref, "still here") == "still here"
    finally:
        await stop(ref, drain_seconds=2)


async def test_ask_after_death_fails_fast_with_actor_unavailable() -> None:
    ref = Echo.start()
    ref.tell("crash")
    await eventually(mailbox_of(ref).terminated.done)
    started = time.monotonic()
    with pytest.raises(ActorUnavailable) as info:
        await ask(ref, "ping", timeout=5)
    assert isinstance(info.value, ActorStopped)
    assert time.monotonic() - started < 0.5
    termination = mailbox_of(ref).terminated.result()
    assert isinstance(termination.cause, RuntimeError)
    # pykka's own stop() on a dead actor still answers "already dead" (False), not an error.
    assert await stop(ref, drain_seconds=1)


async def test_blocking_get_on_the_loop_thread_is_refused() -> None:
    future: BridgeFuture[int] = BridgeFuture()
    with pytest.raises(RuntimeError, match="await it instead"):
        future.get(timeout=1)
    future.set(1)
    assert future.get() == 1  # a done future does not block, so it is allowed


class LoopUser(BridgedActor):
    """Runs coroutines on the loop from its own thread."""

    def on_receive(self, message: Any) -> Any:
        kind, arg = message
        if kind == "value":
            return self.run_on_loop(self._where(arg), timeout=2)
        if kind == "slow":
            return self.run_on_loop(self._slow(arg), timeout=0.05)
        raise ValueError(kind)

    async def _where(self, value: int) -> tuple[int, int]:
        await asyncio.sleep(0.01)
        return value, threading.get_ident()

    async def _slow(self, cancelled: threading.Event) -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise


async def test_run_on_loop_from_the_actor_thread() -> None:
    ref = LoopUser.start()
    try:
        value, thread_id = await ask(ref, ("value", 42))
        assert value == 42
        assert thread_id == threading.get_ident()  # ran on this test's loop thread
    finally:
        await stop(ref, drain_seconds=2)


async def test_run_on_loop_timeout_cancels_the_coroutine() -> None:
    ref = LoopUser.start()
    cancelled = threading.Event()
    try:
        with pytest.raises(ActorTimeout, match=r"did not finish on the event loop within 0\.05s"):
            await ask(ref, ("slow", cancelled), timeout=2)
        await eventually(cancelled.is_set, within=2)
        assert ref.is_alive()  # the error went back to the asker; the actor lives
    finally:
        await stop(ref, drain_seconds=2)


async def test_run_on_loop_from_the_loop_thread_raises_instead_of_deadlocking() -> None:
    loop = asyncio.get_running_loop()

    async def never() -> None:  # pragma: no cover - must not run
        raise AssertionError

    with pytest.raises(RuntimeError, match="would deadlock"):
        run_on_loop(loop, never(), timeout=1)


async def test_run_on_loop_without_a_running_loop_is_unavailable() -> None:
    new_loop = asyncio.new_event_loop()
    try:

        async def never() -> None:  # pragma: no cover - must not run
            raise AssertionError

        result: list[BaseException] = []

        def call() -> None:
            try:
                run_on_loop(new_loop, never(), timeout=1)
            except BaseException as exc:
                result.append(exc)

        thread = threading.Thread(target=call)
        thread.start()
        await eventually(lambda: not thread.is_alive())
        assert isinstance(result[0], ActorUnavailable)
    finally:
        new_loop.close()


async def test_actor_started_on_the_loop_knows_its_loop() -> None:
    ref = Echo.start()
    try:
        runtime = ref.proxy().runtime
        value = await runtime
        assert isinstance(value, Runtime)
        assert value.loop is asyncio.get_running_loop()
    finally:
        await stop(ref, drain_seconds=2)


async def test_stop_drains_queued_messages_first() -> None:
    ref = Echo.start()
    futures = [ref.ask(i, block=False) for i in range(100)]
    assert await stop(ref, drain_seconds=5)
    assert [await f for f in futures] == list(range(100))
    assert not ref.is_alive()
    assert not pykka.ActorRegistry.get_all()


def test_mailbox_answers_every_ask_that_races_its_close() -> None:
    """pykka checks is_alive() then puts, unlocked; an ask landing after the dying actor's last
    drain would hang forever. A closed Mailbox answers every envelope, however they race."""
    from actors import Mailbox

    for _ in range(30):
        mailbox = Mailbox()
        futures: list[BridgeFuture[Any]] = []
        barrier = threading.Barrier(5)
        threads = [
            threading.Thread(target=_put_many, args=(mailbox, barrier, futures)) for _ in range(4)
        ]
        for thread in threads:
            thread.start()
        barrier.wait()
        mailbox.close(crashed=True)  # the actor dies mid-stream, having handled nothing
        for thread in threads:
            thread.join(5)
        assert len(futures) == 1200
        assert all(f.done() for f in futures)
        assert all(isinstance(f.exception(), ActorStopped) for f in futures)


def _put_many(mailbox: Any, barrier: threading.Barrier, futures: list[BridgeFuture[Any]]) -> None:
    from pykka._envelope import Envelope

    barrier.wait()
    for i in range(300):
        future: BridgeFuture[Any] = BridgeFuture()
        futures.append(future)  # list.append is atomic
        mailbox.put(Envelope(i, reply_to=future))


async def test_asks_racing_a_crash_all_resolve() -> None:
    ref = Echo.start()
    futures = [ref.ask(i, block=False) for i in range(50)]
    ref.tell("crash")
    results: list[Any] = []
    barrier = threading.Barrier(5)

    def blocking_asker() -> None:  # actor-side style callers, blocking on their own thread
        barrier.wait()
        for i in range(100):
            try:
                results.append(ref.ask(i, timeout=2))
            except ActorUnavailable as exc:
                results.append(exc)

    threads = [threading.Thread(target=blocking_asker) for _ in range(4)]
    for thread in threads:
        thread.start()
    barrier.wait()
    futures += [ref.ask(i, block=False) for i in range(50)]
    answers = await asyncio.gather(*(_answer(f) for f in futures))
    await eventually(lambda: not any(t.is_alive() for t in threads), within=10)
    assert answers[:50] == list(range(50))  # queued before the crash: handled
    assert all(isinstance(a, ActorUnavailable) for a in answers[50:])
    assert len(results) == 400
    assert all(isinstance(r, int | ActorUnavailable) for r in results)


async def _answer(future: Any) -> Any:
    try:
        return await future
    except ActorUnavailable as exc:
        return exc


class _PausingQueue:
    """Wraps a mailbox's queue so a put stalls between the closed check and the enqueue."""

    def __init__(self, inner: Any, entered: threading.Event, release: threading.Event) -> None:
        self.inner, self.entered, self.release = inner, entered, release

    def put(self, item: Any) -> None:
        self.entered.set()
        self.release.wait(5)
        self.inner.put(item)

    def get_nowait(self) -> Any:
        return self.inner.get_nowait()


def test_an_ask_enqueued_after_the_final_drain_is_still_answered() -> None:
    """The exact interleaving that strands a pykka future: check alive, actor drains and dies,
    then enqueue. Deterministic: the putter is paused inside that window."""
    from pykka._envelope import Envelope

    from actors import Mailbox

    mailbox = Mailbox()
    entered, release = threading.Event(), threading.Event()
    mailbox._queue = _PausingQueue(mailbox._queue, entered, release)  # type: ignore[assignment]
    future: BridgeFuture[Any] = BridgeFuture()
    putter = threading.Thread(target=mailbox.put, args=(Envelope("late", reply_to=future),))
    putter.start()
    assert entered.wait(5)  # the putter passed the "is it closed?" check
    assert mailbox.close(crashed=True) == 0  # the actor's final drain finds nothing
    release.set()
    putter.join(5)
    assert future.done()
    assert isinstance(future.exception(), ActorStopped)


class Unstartable(Echo):
    """Its thread cannot be created (as when the process hits its thread limit)."""


async def test_an_actor_whose_thread_cannot_start_fails_cleanly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_start = threading.Thread.start

    def start(thread: threading.Thread) -> None:
        if thread.name.startswith("Unstartable"):
            raise RuntimeError("can't start new thread")
        real_start(thread)

    monkeypatch.setattr(threading.Thread, "start", start)
    ref = Unstartable.start()  # on the loop: the helper thread starts it, and fails
    with pytest.raises(ActorUnavailable):
        await ask(ref, "hello", timeout=2)
    await eventually(mailbox_of(ref).terminated.done)
    assert isinstance(mailbox_of(ref).terminated.result().cause, RuntimeError)
    assert not ref.is_alive()
    assert pykka.ActorRegistry.get_all() == []


async def test_wait_concurrent_resolves_in_place_from_the_loop_and_across_threads() -> None:
    loop = asyncio.get_running_loop()
    scheduled: list[Any] = []
    original = loop.call_soon_threadsafe

    def counting(callback: Any, *args: Any, **kwargs: Any) -> Any:
        scheduled.append(callback)
        return original(callback, *args, **kwargs)

    loop.call_soon_threadsafe = counting  # type: ignore[method-assign,assignment]
    try:
        on_loop: concurrent.futures.Future[str] = concurrent.futures.Future()
        loop.call_soon(on_loop.set_result, "from the loop")
        assert await wait_concurrent(on_loop, timeout=1) == "from the loop"
        assert scheduled == []  # set on the loop's own thread: no cross-thread hop
        elsewhere: concurrent.futures.Future[str] = concurrent.futures.Future()
        threading.Timer(0.01, elsewhere.set_result, ("from a thread",)).start()
        assert await wait_concurrent(elsewhere, timeout=1) == "from a thread"
        assert len(scheduled) == 1
    finally:
        loop.call_soon_threadsafe = original  # type: ignore[method-assign]


async def test_wait_concurrent_times_out_and_a_cancelled_waiter_leaves_the_future() -> None:
    never: concurrent.futures.Future[int] = concurrent.futures.Future()
    with pytest.raises(TimeoutError):
        await wait_concurrent(never, timeout=0.05)
    shared: concurrent.futures.Future[int] = concurrent.futures.Future()
    first = asyncio.ensure_future(wait_concurrent(shared, timeout=5))
    second = asyncio.ensure_future(wait_concurrent(shared, timeout=5))
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.sleep(0)
    assert not shared.cancelled()
    shared.set_result(7)
    assert await second == 7
    failing: concurrent.futures.Future[int] = concurrent.futures.Future()
    failing.set_exception(ValueError("stored error"))
    with pytest.raises(ValueError, match="stored error"):
        await wait_concurrent(failing, timeout=1)
