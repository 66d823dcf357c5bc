"""Prometheus metrics of the real-time chat."""

from __future__ import annotations

from aioprometheus.collectors import Counter, Gauge, Histogram, Registry

FANOUT_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]


class ChatMetrics:
    """Open sockets, messages in and out, fan-out latency and send-queue overflows."""

    def __init__(self, registry: Registry) -> None:
        self.open_sockets = Gauge("mitra_chat_open_sockets", "WebSockets open", registry=registry)
        self.messages_in = Counter(
            "mitra_chat_messages_in_total", "messages accepted from clients", registry=registry
        )
        self.messages_out = Counter(
            "mitra_chat_messages_out_total", "message frames written to sockets", registry=registry
        )
        self.fanout = Histogram(
            "mitra_chat_fanout_seconds",
            "accept (commit) to the frame written to a member's socket",
            buckets=FANOUT_BUCKETS,
            registry=registry,
        )
        self.overflows = Counter(
            "mitra_chat_send_queue_overflows_total",
            "sockets closed because their send queue overflowed",
            registry=registry,
        )
        self._open = 0

    def opened(self) -> None:
        self._open += 1
        self.open_sockets.set({}, self._open)

    def closed(self) -> None:
        self._open -= 1
        self.open_sockets.set({}, self._open)
