"""HTTP metrics: counted in plain ints per request, copied into the shared registry at scrape.

An aioprometheus `inc` or `observe` costs several microseconds (label dicts are hashed and
sorted on every call); a request needs one of each. So requests and latencies are counted in
dicts keyed by plain tuples and `publish` (a `/metrics` collector) copies them into the
registry's counter and histogram just before a scrape.
"""

from __future__ import annotations

from aioprometheus.collectors import Counter, Histogram, Registry

from mitra.observability.counted import CountedHistogram

LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]


class HttpMetrics:
    """Requests by route, method and status, and a latency histogram by route and method."""

    def __init__(self, registry: Registry) -> None:
        # aioprometheus registers on its process-global registry unless told otherwise; each app
        # has its own, so two apps in one process (tests, two instances) never collide.
        self.requests = Counter(
            "mitra_http_requests_total",
            "HTTP requests by route, method and status",
            registry=registry,
        )
        self.latency = Histogram(
            "mitra_http_request_duration_seconds",
            "HTTP request latency by route and method",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self._requests: dict[tuple[str, str, int], int] = {}
        self._latency: dict[tuple[str, str], CountedHistogram] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        self._requests[key] = self._requests.get(key, 0) + 1
        latency = self._latency.get((route, method))
        if latency is None:
            latency = self._latency[(route, method)] = CountedHistogram(LATENCY_BUCKETS)
        latency.observe(seconds)

    def publish(self) -> None:
        """Copy the counts into the registry's counter and histogram (before a scrape)."""
        for (route, method, status), count in list(self._requests.items()):
            self.requests.set({"route": route, "method": method, "status": str(status)}, count)
        for (route, method), latency in list(self._latency.items()):
            self.latency.set_value({"route": route, "method": method}, latency.snapshot())
