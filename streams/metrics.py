"""Prometheus metrics of the streams layer, all named `mitra_streams_*`."""

from __future__ import annotations

from aioprometheus.collectors import Counter, Gauge, Registry


class StreamsMetrics:
    """The counters and gauges both backends record, registered in one `Registry`.

    Pass the application's registry to expose them on /metrics; without one, a private registry
    is created so that several backends (e.g. in tests) never collide on metric names.
    """

    def __init__(self, registry: Registry | None = None) -> None:
        self.registry = registry if registry is not None else Registry()
        self.produced = Counter(
            "mitra_streams_produced_total", "Events published, by topic.", registry=self.registry
        )
        self.consumed = Counter(
            "mitra_streams_consumed_total",
            "Events handled and committed (including dead-lettered), by topic and group.",
            registry=self.registry,
        )
        self.retries = Counter(
            "mitra_streams_retries_total",
            "Handler attempts that failed and were retried, by topic and group.",
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "mitra_streams_dead_letters_total",
            "Events sent to a group's dead-letter topic, by topic and group.",
            registry=self.registry,
        )
        self.retention_skipped = Counter(
            "mitra_streams_retention_skipped_total",
            "Records a group never handled because retention dropped them first, by topic and"
            " group (memory:// only; a Kafka consumer resets by auto_offset_reset).",
            registry=self.registry,
        )
        self.retention_dropped = Counter(
            "mitra_streams_retention_dropped_total",
            "Records dropped by retention, by topic (memory:// only; Kafka's broker does this).",
            registry=self.registry,
        )
        self.lag = Gauge(
            "mitra_streams_consumer_lag",
            "Events in a partition not yet committed by the group (end offset - committed).",
            registry=self.registry,
        )

    def record_produced(self, topic: str, count: int = 1) -> None:
        self.produced.add({"topic": topic}, count)

    def record_consumed(self, topic: str, group: str, count: int = 1) -> None:
        self.consumed.add({"topic": topic, "group": group}, count)

    def record_retry(self, topic: str, group: str) -> None:
        self.retries.inc({"topic": topic, "group": group})

    def record_dead_letter(self, topic: str, group: str) -> None:
        self.dead_letters.inc({"topic": topic, "group": group})

    def record_retention_skip(self, topic: str, group: str, count: int) -> None:
        self.retention_skipped.add({"topic": topic, "group": group}, count)

    def record_retention_drop(self, topic: str, count: int) -> None:
        self.retention_dropped.add({"topic": topic}, count)

    def set_lag(self, topic: str, group: str, partition: int, lag: int) -> None:
        self.lag.set({"topic": topic, "group": group, "partition": str(partition)}, max(lag, 0))
