"""Sliding-window rate limits keyed by IP address, account or user."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Hashable

from mitra.errors import RateLimited


class RateLimiter:
    """At most `limit` hits per `window_seconds` per key; the state is this process's memory.

    Memory is right for one instance; behind a load balancer each instance enforces its own
    window, so the effective limit is multiplied by the instance count (noted in the README).
    """

    def __init__(
        self,
        limit: int,
        window_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self.limit = limit
        self.window = window_seconds
        self._clock = clock
        self._max_keys = max_keys
        # Keys may be any hashable: the chat's per-user limits key by the UUID itself, so a message
        # costs no string formatting.
        self._hits: dict[Hashable, deque[float]] = {}

    def hit(self, key: Hashable) -> None:
        """Count one attempt; raise `RateLimited` with Retry-After when the key is over."""
        now = self._clock()
        hits = self._hits.get(key)
        if hits is None:
            if len(self._hits) >= self._max_keys:
                self._evict(now)
            hits = self._hits[key] = deque()
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        if len(hits) >= self.limit:
            raise RateLimited(math.ceil(hits[0] + self.window - now))
        hits.append(now)

    def reset(self, key: Hashable) -> None:
        self._hits.pop(key, None)

    def _evict(self, now: float) -> None:
        # Drop keys whose windows have passed; if every key is live, drop the oldest half so a
        # flood of distinct keys cannot grow memory without bound.
        stale = [
            key for key, hits in self._hits.items() if not hits or hits[-1] <= now - self.window
        ]
        for key in stale:
            del self._hits[key]
        if len(self._hits) >= self._max_keys:
            for key in list(self._hits)[: self._max_keys // 2]:
                del self._hits[key]
