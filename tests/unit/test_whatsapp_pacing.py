"""The send pacer and the backoff, on an injected clock and random source: no wall-clock time."""

from __future__ import annotations

import asyncio
import random

import pytest

from mitra.whatsapp.pacing import Backoff, SendPacer


class FakeTime:
    """A clock that only moves when a sleeper sleeps, recording every sleep."""

    def __init__(self, advance: bool) -> None:
        self.now = 1000.0
        self.advance = advance
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self.advance:
            self.now += seconds
        await asyncio.sleep(0)


async def test_a_burst_of_500_concurrent_sends_is_held_to_the_rate() -> None:
    time = FakeTime(advance=False)
    pacer = SendPacer(80.0, burst=10, clock=time.clock, sleep=time.sleep)

    waits = await asyncio.gather(*(pacer.wait("pn-1") for _ in range(500)))

    # Each send starts `wait` after the burst began: ten at once, then one every 1/80 s.
    starts = sorted(waits)
    assert starts == pytest.approx([max(0.0, (i - 9) / 80) for i in range(500)])
    assert len([w for w in waits if w == 0]) == 10
    assert max(waits) == pytest.approx(490 / 80)
    # No one-second window, wherever it starts, holds more than the rate plus the burst.
    for first in starts:
        in_window = [s for s in starts if first <= s < first + 1 - 1e-9]
        assert len(in_window) <= 80 + 9
    # Arrival order is kept: the n-th caller never starts before the (n-1)-th.
    assert waits == sorted(waits)


async def test_sequential_sends_take_as_long_as_the_rate_says() -> None:
    time = FakeTime(advance=True)
    start = time.now
    pacer = SendPacer(80.0, burst=10, clock=time.clock, sleep=time.sleep)

    for _ in range(500):
        await pacer.wait("pn-1")

    assert time.now - start == pytest.approx(490 / 80)
    assert len(time.sleeps) == 490


async def test_numbers_are_paced_independently() -> None:
    time = FakeTime(advance=False)
    pacer = SendPacer(2.0, burst=1, clock=time.clock, sleep=time.sleep)

    assert await pacer.wait("pn-1") == 0
    assert await pacer.wait("pn-1") == pytest.approx(0.5)
    assert await pacer.wait("pn-2") == 0


async def test_an_idle_number_gets_its_burst_back_but_no_more() -> None:
    time = FakeTime(advance=False)
    pacer = SendPacer(10.0, burst=3, clock=time.clock, sleep=time.sleep)
    for _ in range(3):
        assert await pacer.wait("pn-1") == 0
    assert await pacer.wait("pn-1") == pytest.approx(0.1)

    time.now += 60  # a long quiet minute refills three tokens, not six hundred
    waits = [await pacer.wait("pn-1") for _ in range(5)]

    assert waits == pytest.approx([0, 0, 0, 0.1, 0.2])


def test_the_pacer_refuses_a_rate_it_cannot_keep() -> None:
    with pytest.raises(ValueError, match="rate_per_second"):
        SendPacer(0)
    with pytest.raises(ValueError, match="burst"):
        SendPacer(80, burst=0)


def test_backoff_grows_exponentially_to_its_cap() -> None:
    backoff = Backoff(base=0.5, cap=8.0, max_attempts=10, random=lambda: 1.0)

    assert [backoff.delay(n) for n in range(1, 8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_backoff_jitter_stays_within_zero_and_the_ceiling() -> None:
    source = random.Random(1234)
    backoff = Backoff(base=0.25, cap=5.0, max_attempts=100, random=source.random)

    for failures in range(1, 60):
        ceiling = min(5.0, 0.25 * 2 ** (failures - 1))
        draws = [backoff.delay(failures) for _ in range(50)]
        assert all(d is not None and 0 <= d <= ceiling for d in draws)
        # Full jitter: the draws spread over the range rather than clustering at the top.
        assert min(d for d in draws if d is not None) < ceiling / 2


def test_backoff_stops_after_max_attempts() -> None:
    backoff = Backoff(base=1.0, cap=4.0, max_attempts=3, random=lambda: 0.5)

    assert backoff.delay(1) == 0.5
    assert backoff.delay(2) == 1.0
    assert backoff.delay(3) is None
    assert backoff.delay(4) is None


def test_backoff_honours_a_longer_retry_after_even_beyond_the_cap() -> None:
    backoff = Backoff(base=1.0, cap=4.0, max_attempts=5, random=lambda: 1.0)

    assert backoff.delay(1, retry_after=3.0) == 3.0
    assert backoff.delay(3, retry_after=3.0) == 4.0  # the jittered delay was longer
    assert backoff.delay(1, retry_after=60.0) == 60.0
    assert backoff.delay(5, retry_after=60.0) is None  # out of attempts, whatever the server says


def test_backoff_survives_a_huge_failure_count() -> None:
    backoff = Backoff(base=1.0, cap=30.0, max_attempts=10_000, random=lambda: 1.0)

    assert backoff.delay(5000) == 30.0


def test_backoff_refuses_nonsense_settings() -> None:
    with pytest.raises(ValueError, match="base"):
        Backoff(base=0)
    with pytest.raises(ValueError, match="cap"):
        Backoff(base=2, cap=1)
    with pytest.raises(ValueError, match="max_attempts"):
        Backoff(max_attempts=0)
    with pytest.raises(ValueError, match="failures"):
        Backoff().ceiling(0)


async def test_an_instance_with_half_the_partitions_sends_at_half_the_rate() -> None:
    # Two instances share the senders: together they must stay within Meta's 80 per second.
    time = FakeTime(advance=True)
    start = time.now
    pacer = SendPacer(80.0, burst=1, clock=time.clock, sleep=time.sleep)
    pacer.share(3 / 6)
    assert pacer.rate_per_second == 40.0

    for _ in range(41):
        await pacer.wait("pn-1")

    assert time.now - start == pytest.approx(40 / 40)
    # Alone again (a rebalance gave it every partition): the whole rate.
    pacer.share(1.0)
    before = time.now
    for _ in range(80):
        await pacer.wait("pn-1")
    assert time.now - before == pytest.approx(80 / 80, abs=1 / 40)
