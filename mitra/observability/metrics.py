"""HTTP metrics on an aioprometheus registry that every component shares."""

from __future__ import annotations

from aioprometheus.collectors import Counter, Histogram, Registry

LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]


class HttpMetrics:
    """Requests by route, method and status, and a latency histogram."""

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

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.inc({"route": route, "method": method, "status": str(status)})
        self.latency.observe({"route": route, "method": method}, seconds)
