"""Prometheus counters of the WhatsApp channel (webhooks are few; aioprometheus counts them)."""

from __future__ import annotations

from aioprometheus.collectors import Counter, Histogram, Registry


class WhatsAppMetrics:
    def __init__(self, registry: Registry) -> None:
        self.webhooks = Counter(
            "mitra_whatsapp_webhooks_total",
            "webhook POSTs by outcome (accepted, bad_signature, unknown_tenant, unreadable)",
            registry=registry,
        )
        self.items = Counter(
            "mitra_whatsapp_webhook_items_total",
            "messages and statuses in accepted webhooks, by kind and outcome (published, "
            "foreign_number, malformed)",
            registry=registry,
        )
        self.inbound = Counter(
            "mitra_whatsapp_inbound_total",
            "customers' messages by outcome (stored, duplicate, refused, no_integration, "
            "bad_number)",
            registry=registry,
        )
        self.statuses = Counter(
            "mitra_whatsapp_statuses_total",
            "Meta's statuses of sent messages, by status and outcome (applied, stale, not_ours; "
            "early: it came before the send was recorded, and was tried again)",
            registry=registry,
        )
        self.sends = Counter(
            "mitra_whatsapp_sends_total",
            "outbound messages by outcome (sent, failed, unknown, retried)",
            registry=registry,
        )
        self.send_latency = Histogram(
            "mitra_whatsapp_send_seconds",
            "a member's message stored to Meta taking it (pacing and retries included)",
            buckets=[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0],
            registry=registry,
        )
        self.pacing = Counter(
            "mitra_whatsapp_rate_limit_waits_total",
            "sends that waited for their business number's rate limit",
            registry=registry,
        )
        self.meta_errors = Counter(
            "mitra_whatsapp_meta_errors_total",
            "errors Meta reported inside webhooks, by code",
            registry=registry,
        )

    def webhook(self, outcome: str) -> None:
        self.webhooks.inc({"outcome": outcome})
