"""`create_streams(url)`: the one place a streams URL becomes a backend."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from streams.base import Streams


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
