"""How fast and how often Mitra calls the Cloud API: a per-number send pacer and a backoff."""

from __future__ import annotations

import asyncio
import random as random_module
import time
from collections.abc import Awaitable, Callable

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class SendPacer:
    """Holds each business phone number to `rate_per_second` sends, after a burst of `burst`.

    Meta's throughput limit is per number (80 messages a second by default), so numbers are
    paced independently. This is a token bucket kept as the time its next token is due (GCRA):
    each caller reserves its slot before it sleeps, with no await in between, so concurrent
    senders on one loop are served in arrival order and never together exceed the rate. A
    caller cancelled while it waits gives its slot up to no one, which errs on the slow side.

    Several instances send for the same numbers (sends are spread over `whatsapp.outbound`'s
    partitions by conversation), so each takes the share of the rate that its partitions are of
    the topic's (`share`): together they stay within Meta's limit. A busy partition on one
    instance may then wait while another instance has room, which again errs on the slow side.
    """

    def __init__(
        self,
        rate_per_second: float = 80.0,
        burst: int = 10,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if rate_per_second <= 0:
            raise ValueError("rate_per_second: must be positive")
        if burst < 1:
            raise ValueError("burst: at least 1")
        self._rate = rate_per_second
        self._burst = burst
        self._fraction = 1.0
        self._interval = 1.0 / rate_per_second
        # How far ahead of its due time a send may go: the burst, less the send itself.
        self._tolerance = (burst - 1) * self._interval
        self._clock = clock
        self._sleep = sleep
        self._due: dict[str, float] = {}

    @property
    def rate_per_second(self) -> float:
        """The rate this instance holds each number to: its share of the configured rate."""
        return self._rate * self._fraction

    def share(self, fraction: float) -> None:
        """Hold each number to `fraction` of the configured rate (0 < fraction <= 1)."""
        fraction = min(1.0, max(fraction, 1e-3))
        if fraction == self._fraction:
            return
        self._fraction = fraction
        self._interval = 1.0 / (self._rate * fraction)
        self._tolerance = (self._burst - 1) * self._interval

    async def wait(self, phone_number_id: str) -> float:
        """Wait until this number may send again; returns the seconds waited (for a metric)."""
        now = self._clock()
        due = max(self._due.get(phone_number_id, now), now)
        delay = due - self._tolerance - now
        # Sums of 1/rate drift by a few ulps; a sleep of 1e-13 s is a wasted loop turn.
        if delay < 1e-9:
            delay = 0.0
        self._due[phone_number_id] = due + self._interval
        self._forget_idle(now)
        if delay > 0:
            await self._sleep(delay)
        return delay

    def _forget_idle(self, now: float) -> None:
        # A number whose bucket has refilled needs no memory; keeps the map to busy numbers.
        if len(self._due) > 1024:
            for key in [key for key, due in self._due.items() if due <= now]:
                del self._due[key]


class Backoff:
    """Exponential backoff with full jitter: after n failures, wait U(0, min(cap, base * 2^(n-1))).

    Full jitter spreads the retries of many senders that failed together (one 429 for a whole
    burst) instead of bringing them back in step. A server's Retry-After is a floor: it is
    honoured whenever it is longer than the jittered delay, even beyond `cap`, because the
    server knows when it will take the call again.
    """

    def __init__(
        self,
        base: float = 0.5,
        cap: float = 30.0,
        max_attempts: int = 5,
        *,
        random: Callable[[], float] = random_module.random,
    ) -> None:
        if base <= 0:
            raise ValueError("base: must be positive")
        if cap < base:
            raise ValueError("cap: must be at least base")
        if max_attempts < 1:
            raise ValueError("max_attempts: at least 1")
        self.base = base
        self.cap = cap
        self.max_attempts = max_attempts
        self._random = random

    def ceiling(self, failures: int) -> float:
        """The largest jittered delay after `failures` failed attempts."""
        if failures < 1:
            raise ValueError("failures: at least 1")
        # Past 2^62 the cap has long won; the exponent is bounded so the float cannot overflow.
        return min(self.cap, self.base * 2.0 ** min(failures - 1, 62))

    def delay(self, failures: int, retry_after: float | None = None) -> float | None:
        """Seconds to wait before the next attempt, or None once `max_attempts` are used up.

        `failures` counts the attempts made so far, all of which failed.
        """
        if failures >= self.max_attempts:
            return None
        jittered = self._random() * self.ceiling(failures)
        if retry_after is not None and retry_after > jittered:
            return retry_after
        return jittered
