"""Prometheus metrics of the assistant: replies by source, hand-offs, the LLM and its breaker."""

from __future__ import annotations

from aioprometheus.collectors import Counter, Gauge, Histogram, Registry

BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}


class AssistantMetrics:
    def __init__(self, registry: Registry) -> None:
        self.replies = Counter(
            "mitra_bot_replies_total",
            "assistant replies by source (rule, kb, llm, fallback)",
            registry=registry,
        )
        self.handoffs = Counter(
            "mitra_bot_handoffs_total",
            "customers handed to their agent, by reason (asked_for_agent, low_confidence)",
            registry=registry,
        )
        self.llm_latency = Histogram(
            "mitra_bot_llm_seconds",
            "one LLM answer, retries included",
            buckets=[0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0],
            registry=registry,
        )
        self.llm_tokens = Counter(
            "mitra_bot_llm_tokens_total",
            "LLM tokens by kind (prompt, completion), as the provider's usage reports them",
            registry=registry,
        )
        self.llm_calls = Counter(
            "mitra_bot_llm_calls_total",
            "LLM calls by outcome (ok, failed, refused, error, skipped_open, skipped_budget)",
            registry=registry,
        )
        self.payment_links = Counter(
            "mitra_bot_payment_links_total",
            "payment links for premium_payment answers by outcome (made, reused, no_gateway, "
            "refused, unavailable, timeout, failed)",
            registry=registry,
        )
        self.breaker = Gauge(
            "mitra_bot_llm_breaker_state",
            "the LLM circuit breaker: 0 closed, 1 half open, 2 open",
            registry=registry,
        )
        self.breaker.set({}, 0)

    def replied(self, source: str) -> None:
        self.replies.inc({"source": source})

    def handed_off(self, reason: str) -> None:
        self.handoffs.inc({"reason": reason})

    def payment_link(self, outcome: str) -> None:
        self.payment_links.inc({"outcome": outcome})

    def breaker_state(self, state: str) -> None:
        self.breaker.set({}, BREAKER_STATES[state])
