"""A histogram counted in a plain list on the hot path, copied into aioprometheus at scrape.

An aioprometheus `observe` hashes and sorts its label dict and walks every bucket per call:
several microseconds, paid per request, per chat frame and per actor ask. This keeps one list of
per-bucket counts and a sum per series; `snapshot` builds the cumulative histogram a scrape shows.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

from aioprometheus import histogram


class CountedHistogram:
    __slots__ = ("_bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self._bounds = tuple(bounds)
        # One slot per bucket and one for the observations above the last bound (+Inf).
        self.counts = [0] * (len(self._bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        # bisect_left: a value equal to a bound belongs to that bound's bucket (le="bound").
        self.counts[bisect_left(self._bounds, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        return sum(self.counts)

    def snapshot(self) -> histogram.Histogram:
        """The cumulative form aioprometheus renders, for `Histogram.set_value`."""
        target = histogram.Histogram(*self._bounds)
        cumulative = 0
        for bound, count in zip(target.buckets, self.counts, strict=True):
            cumulative += count
            target.buckets[bound] = cumulative
        target.observations = cumulative
        target.sum = self.sum
        return target
