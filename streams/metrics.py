"""Prometheus metrics of the streams layer, all named `mitra_streams_*`.

Counted in plain dicts on the hot path and copied into the registry by `publish` before each
scrape: an aioprometheus `inc` or `set` hashes its labels into a frozen dict each call, which at
every publish and every delivery was ~5 % of the event loop under chat load.
"""

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
        self._produced: dict[str, int] = {}
        self._consumed: dict[tuple[str, str], int] = {}
        self._retries: dict[tuple[str, str], int] = {}
        self._dead_letters: dict[tuple[str, str], int] = {}
        self._lag: dict[tuple[str, str, int], int] = {}

    def record_produced(self, topic: str, count: int = 1) -> None:
        self._produced[topic] = self._produced.get(topic, 0) + count

    def record_consumed(self, topic: str, group: str, count: int = 1) -> None:
        key = (topic, group)
        self._consumed[key] = self._consumed.get(key, 0) + count

    def record_retry(self, topic: str, group: str) -> None:
        key = (topic, group)
        self._retries[key] = self._retries.get(key, 0) + 1

    def record_dead_letter(self, topic: str, group: str) -> None:
        key = (topic, group)
        self._dead_letters[key] = self._dead_letters.get(key, 0) + 1

    # Retention counts change once per dropped run of records, not per event: straight in.
    def record_retention_skip(self, topic: str, group: str, count: int) -> None:
        self.retention_skipped.add({"topic": topic, "group": group}, count)

    def record_retention_drop(self, topic: str, count: int) -> None:
        self.retention_dropped.add({"topic": topic}, count)

    def set_lag(self, topic: str, group: str, partition: int, lag: int) -> None:
        self._lag[(topic, group, partition)] = max(lag, 0)

    def publish(self) -> None:
        """Copy the counts into the registry's collectors (before a scrape, or a test's read)."""
        for topic, count in list(self._produced.items()):
            self.produced.set({"topic": topic}, count)
        for collector, counts in (
            (self.consumed, self._consumed),
            (self.retries, self._retries),
            (self.dead_letters, self._dead_letters),
        ):
            for (topic, group), count in list(counts.items()):
                collector.set({"topic": topic, "group": group}, count)
        for (topic, group, partition), lag in list(self._lag.items()):
            self.lag.set({"topic": topic, "group": group, "partition": str(partition)}, lag)
