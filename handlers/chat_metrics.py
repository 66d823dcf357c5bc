"""Prometheus metrics of the real-time chat, counted in plain ints on the hot path.

An aioprometheus `inc` or `observe` costs several microseconds (label hashing, locks); per
frame written to thousands of sockets that is a measurable share of a core. The chat counts in
ints and a bucket list, and `publish` copies them into the registry before each scrape.
"""

from __future__ import annotations

from aioprometheus.collectors import Counter, Gauge, Histogram, Registry

from mitra.observability.counted import CountedHistogram

FANOUT_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]


class ChatMetrics:
    """Open sockets, messages in and out, fan-out latency and send-queue overflows."""

    def __init__(self, registry: Registry) -> None:
        self._open_sockets = Gauge("mitra_chat_open_sockets", "WebSockets open", registry=registry)
        self._messages_in = Counter(
            "mitra_chat_messages_in_total", "messages accepted from clients", registry=registry
        )
        self._messages_out = Counter(
            "mitra_chat_messages_out_total", "message frames written to sockets", registry=registry
        )
        self._overflows = Counter(
            "mitra_chat_send_queue_overflows_total",
            "sockets closed because their send queue overflowed",
            registry=registry,
        )
        self._fanout = Histogram(
            "mitra_chat_fanout_seconds",
            "accept (numbering) to the frame written to a member's socket",
            buckets=FANOUT_BUCKETS,
            registry=registry,
        )
        self.fanout = CountedHistogram(FANOUT_BUCKETS)
        self.open = 0
        self.messages_in = 0
        self.messages_out = 0
        self.overflows = 0

    def opened(self) -> None:
        self.open += 1

    def closed(self) -> None:
        self.open -= 1

    def publish(self) -> None:
        """Copy the counts into the registry (before a scrape)."""
        self._open_sockets.set({}, self.open)
        self._messages_in.set({}, self.messages_in)
        self._messages_out.set({}, self.messages_out)
        self._overflows.set({}, self.overflows)
        if self.fanout.count:
            self._fanout.set_value({}, self.fanout.snapshot())
