"""Mitra's streams: the topic catalog, one `Streams` interface, memory and Kafka backends."""

from __future__ import annotations

from streams.base import Handler, RetryPolicy, Streams, Subscription
from streams.envelope import Event
from streams.errors import EnvelopeError, StreamsError, StreamsUnavailable
from streams.factory import create_streams
from streams.idempotency import InMemoryProcessedStore, ProcessedStore, idempotent
from streams.metrics import StreamsMetrics
from streams.topics import CATALOG, Topic, TopicSpec, catalog_specs, dead_letter_topic

__all__ = [
    "CATALOG",
    "EnvelopeError",
    "Event",
    "Handler",
    "InMemoryProcessedStore",
    "ProcessedStore",
    "RetryPolicy",
    "Streams",
    "StreamsError",
    "StreamsMetrics",
    "StreamsUnavailable",
    "Subscription",
    "Topic",
    "TopicSpec",
    "catalog_specs",
    "create_streams",
    "dead_letter_topic",
    "idempotent",
]
