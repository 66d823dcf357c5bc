"""Prometheus metrics of payments: webhook outcomes, gateway calls (latency and errors)."""

from __future__ import annotations

from aioprometheus.collectors import Counter, Gauge, Histogram, Registry


class PaymentMetrics:
    def __init__(self, registry: Registry) -> None:
        self.webhooks = Counter(
            "mitra_payment_webhooks_total",
            "gateway webhook POSTs by gateway and outcome (recorded, duplicate, unmatched, "
            "refused, unknown_tenant)",
            registry=registry,
        )
        self.gateway_seconds = Histogram(
            "mitra_payment_gateway_seconds",
            "SDK calls to the gateways, by gateway and operation",
            buckets=[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0],
            registry=registry,
        )
        self.gateway_errors = Counter(
            "mitra_payment_gateway_errors_total",
            "SDK calls that failed, by gateway and operation",
            registry=registry,
        )

        self.sagas = Gauge(
            "mitra_payment_sagas",
            "payments by saga status, across the tenants (refreshed by the poller)",
            registry=registry,
        )

    def saga_counts(self, counts: dict[str, int]) -> None:
        for status, count in counts.items():
            self.sagas.set({"status": status}, count)

    def webhook(self, gateway: str, outcome: str) -> None:
        self.webhooks.inc({"gateway": gateway, "outcome": outcome})

    def gateway_call(self, gateway: str, operation: str, seconds: float, ok: bool) -> None:
        """Called on a saga actor's thread after each SDK call."""
        labels = {"gateway": gateway, "operation": operation}
        self.gateway_seconds.observe(labels, seconds)
        if not ok:
            self.gateway_errors.inc(labels)
