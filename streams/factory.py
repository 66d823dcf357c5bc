"""`create_streams(url)`: the one place a streams URL becomes a backend."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from aioprometheus.collectors import Registry

from mitra.settings import StreamsSettings
from streams.base import Streams
from streams.topics import catalog_specs


def create_streams(url: str, **options: Any) -> Streams:
    """A backend for `memory://` or `kafka://host:port[,host:port]`; options go to its constructor.

    The Kafka backend is imported only when asked for, so `memory://` works without aiokafka.
    """
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        from streams.memory import MemoryStreams

        return MemoryStreams(**options)
    if scheme == "kafka":
        servers = url.split("://", 1)[1].strip("/")
        if not servers:
            raise ValueError(f"no brokers in {url!r}; expected kafka://host:port[,host:port]")
        from streams.kafka import KafkaStreams

        return KafkaStreams(servers, **options)
    raise ValueError(f"unknown streams URL {url!r}; expected memory:// or kafka://host:port")


def streams_from_settings(settings: StreamsSettings, registry: Registry | None = None) -> Streams:
    """The backend the configuration names, with its retention (memory://) or its Kafka
    security and group timings."""
    if not settings.url.startswith("kafka://"):
        from streams._memlog import Retention

        return create_streams(
            settings.url, registry=registry, retention=Retention.from_settings(settings)
        )
    from streams.kafka import KafkaSecurity, KafkaTuning

    security = KafkaSecurity(
        security_protocol=settings.kafka_security_protocol,
        sasl_mechanism=settings.kafka_sasl_mechanism,
        sasl_username=settings.kafka_sasl_username or None,
        sasl_password=settings.kafka_sasl_password or None,
        ssl_cafile=settings.kafka_ssl_cafile or None,
    )
    tuning = KafkaTuning(
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
    )
    return create_streams(
        settings.url,
        security=security,
        tuning=tuning,
        enable_idempotence=settings.kafka_idempotence,
        client_id=settings.kafka_client_id,
        replication_factor=settings.kafka_replication_factor,
        registry=registry,
        # Created on every (re)connect, so a broker that was down at start-up still gets them.
        topics=catalog_specs(),
    )
