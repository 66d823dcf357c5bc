"""Prometheus metrics of the actor runtime."""

from __future__ import annotations

import threading
from typing import Any, TypeVar

from aioprometheus.collectors import Counter, Gauge, Histogram, Registry

from mitra.observability.counted import CountedHistogram

__all__ = ["ActorMetrics", "collector"]

C = TypeVar("C", Counter, Gauge, Histogram)

# Asks are sub-millisecond when healthy; the tail matters up to the ask timeout.
ASK_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


def collector(registry: Registry, kind: type[C], name: str, doc: str, **kwargs: Any) -> C:
    """Return the collector `name` from `registry`, creating it on first use.

    Registries refuse a second collector of one name; systems restarted in tests, or two
    components sharing the app's registry, reuse the existing one instead.
    """
    existing = registry.collectors.get(name)
    if existing is not None:
        if not isinstance(existing, kind):
            raise TypeError(f"metric {name} is already registered as {type(existing).__name__}")
        return existing
    return kind(name, doc, registry=registry, **kwargs)


class ActorMetrics:
    """The `mitra_actors_*` metrics.

    aioprometheus collectors are plain dicts updated with read-modify-write; actors update
    them from their own threads, so every update here holds one lock.
    """

    def __init__(self, registry: Registry | None = None) -> None:
        self.registry = registry if registry is not None else Registry()
        r = self.registry
        self._lock = threading.Lock()
        self.alive = collector(r, Gauge, "mitra_actors_alive", "Actors alive, by kind.")
        self.activations = collector(
            r, Counter, "mitra_actors_activations_total", "Pooled actors activated."
        )
        self.passivations = collector(
            r, Counter, "mitra_actors_passivations_total", "Pooled actors passivated, by reason."
        )
        self.restarts = collector(
            r, Counter, "mitra_actors_restarts_total", "Supervised restarts, by kind and cause."
        )
        self.failures = collector(
            r, Counter, "mitra_actors_failures_total", "Actors that crashed, by kind and cause."
        )
        self.mailbox_depth = collector(
            r, Gauge, "mitra_actors_mailbox_depth", "Queued messages, summed by kind (sampled)."
        )
        self.mailbox_depth_max = collector(
            r, Gauge, "mitra_actors_mailbox_depth_max", "Deepest mailbox by kind (sampled)."
        )
        self.ask_latency = collector(
            r,
            Histogram,
            "mitra_actors_ask_latency_seconds",
            "Time from ask to answer, seen from the event loop.",
            buckets=ASK_LATENCY_BUCKETS,
        )
        self.leaked = collector(
            r, Counter, "mitra_actors_leaked_total", "Actors found alive after shutdown (bugs)."
        )
        # Asks are awaited on the event loop only, one per request or chat send: counted in
        # plain lists there (no lock) and copied into `ask_latency` by `publish`.
        self._ask_latency: dict[str, CountedHistogram] = {}

    def actor_started(self, kind: str) -> None:
        with self._lock:
            self.alive.inc({"kind": kind})

    def actor_stopped(self, kind: str, cause: BaseException | None) -> None:
        with self._lock:
            self.alive.dec({"kind": kind})
            if cause is not None:
                self.failures.inc({"kind": kind, "cause": type(cause).__name__})

    def activated(self, kind: str) -> None:
        with self._lock:
            self.activations.inc({"kind": kind})

    def passivated(self, kind: str, reason: str, count: int = 1) -> None:
        if count:
            with self._lock:
                self.passivations.add({"kind": kind, "reason": reason}, count)

    def restarted(self, kind: str, cause: str) -> None:
        with self._lock:
            self.restarts.inc({"kind": kind, "cause": cause})

    def mailbox_sample(self, kind: str, total: int, deepest: int) -> None:
        with self._lock:
            self.mailbox_depth.set({"kind": kind}, total)
            self.mailbox_depth_max.set({"kind": kind}, deepest)

    def ask_observed(self, kind: str, seconds: float) -> None:
        """An ask's latency; call it on the event loop's thread."""
        latency = self._ask_latency.get(kind)
        if latency is None:
            latency = self._ask_latency[kind] = CountedHistogram(ASK_LATENCY_BUCKETS)
        latency.observe(seconds)

    def publish(self) -> None:
        """Copy what is counted in plain lists into the registry (before a scrape)."""
        for kind, latency in list(self._ask_latency.items()):
            self.ask_latency.set_value({"kind": kind}, latency.snapshot())

    def leak(self, kind: str) -> None:
        with self._lock:
            self.leaked.inc({"kind": kind})
