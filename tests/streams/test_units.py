"""Unit tests under the contract: envelope, partitioner, catalog, factory, delivery."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import uuid4

import pydantic
import pytest

from streams import create_streams
from streams._delivery import Deliverer, Record
from streams.base import RetryPolicy
from streams.envelope import Event, encode_envelope
from streams.errors import EnvelopeError
from streams.memory import MemoryStreams
from streams.metrics import StreamsMetrics
from streams.murmur2 import murmur2, partition_for
from streams.topics import (
    CATALOG,
    CHAT_EVENTS,
    AnalyticsEvent,
    ChatEvent,
    DeadLetter,
    catalog_specs,
)


def test_envelope_round_trips_and_is_frozen() -> None:
    ist = timezone(timedelta(hours=5, minutes=30))
    e = Event(
        type="chat.message",
        tenant_id="t1",
        key="c1",
        occurred_at=datetime(2025, 1, 2, 8, 0, tzinfo=ist),
        payload={"a": [1, 2]},
    )
    assert e.occurred_at == datetime(2025, 1, 2, 2, 30, tzinfo=UTC)
    assert b'"occurred_at":"2025-01-02T02:30:00Z"' in e.encode()
    assert Event.decode(e.encode()) == e
    with pytest.raises(pydantic.ValidationError):
        e.type = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2025, 1, 2, 8, 0, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        datetime(2025, 1, 2, 8, 0, 0, 120_000, tzinfo=UTC),
        datetime(2025, 1, 2, 8, 0, 0, 5, tzinfo=UTC),
    ],
)
def test_an_envelope_encoded_from_its_fields_is_the_models_bytes(moment: datetime) -> None:
    e = Event(
        type="chat.accepted",
        tenant_id=str(uuid4()),
        key="c1",
        occurred_at=moment,
        payload={"seq": 7, "body": "namaste \u0928", "x": [1.5, None, True], "y": {}},
    )
    fields = e.model_dump(exclude={"version"})
    assert encode_envelope(**fields) == e.encode()
    assert Event.decode(encode_envelope(**fields)) == e


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"type": ""}, "type"),
        ({"occurred_at": datetime(2025, 1, 1)}, "timezone"),
        ({"payload": [1, 2]}, "JSON object"),
        ({"payload": {"at": object()}}, "serialisable"),
    ],
)
def test_fields_the_model_refuses_are_refused_when_encoding(
    change: dict[str, object], message: str
) -> None:
    fields: dict[str, Any] = {
        "id": uuid4(),
        "type": "x",
        "tenant_id": "t",
        "key": "k",
        "occurred_at": datetime.now(UTC),
        "payload": {},
    }
    with pytest.raises(EnvelopeError, match=message):
        encode_envelope(**{**fields, **change})


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"type": "x"}', "tenant_id"),
        (None, "empty"),
        (
            b'{"type":"x","tenant_id":"t","key":"k","occurred_at":"2025-01-01T00:00:00"}',
            "timezone",
        ),
    ],
)
def test_envelope_decode_errors_are_clear(raw: bytes | None, message: str) -> None:
    with pytest.raises(EnvelopeError, match=message):
        Event.decode(raw)


def test_murmur2_agrees_with_aiokafka() -> None:
    partitioner = pytest.importorskip("aiokafka.partitioner")
    keys = [os.urandom(n) for n in range(40) for _ in range(25)] + [b"", b"conversation-1"]
    for key in keys:
        assert murmur2(key) == partitioner.murmur2(key)
        expected = partitioner.DefaultPartitioner()(key, list(range(12)), list(range(12)))
        assert partition_for(key, 12) == expected


def test_catalog_declares_every_topic_once_with_a_dead_letter_per_group() -> None:
    assert {
        "chat.commands",
        "chat.events",
        "whatsapp.inbound",
        "whatsapp.outbound",
        "payments.events",
        "imports.rows",
        "imports.results",
        "analytics.events",
    } <= set(CATALOG)
    specs = catalog_specs(prefix="x.", groups=("fanout",))
    assert {s.name for s in specs} >= {"x.chat.events", "x.dlq.fanout"}
    payload = ChatEvent(
        conversation_id=uuid4(), seq=1, message_id=uuid4(), sender_id=uuid4(), body="hi"
    )
    e = CHAT_EVENTS.event(type="chat.accepted", tenant_id="t", key="c", payload=payload)
    assert CHAT_EVENTS.payload(e) == payload
    wrong = AnalyticsEvent(channel="x")
    with pytest.raises(TypeError):
        CHAT_EVENTS.event(type="x", tenant_id="t", key="c", payload=wrong)  # type: ignore[arg-type]


def test_factory_picks_the_backend_from_the_url() -> None:
    assert isinstance(create_streams("memory://"), MemoryStreams)
    kafka = create_streams("kafka://127.0.0.1:9092,127.0.0.1:9093", enable_idempotence=False)
    assert kafka.bootstrap_servers == ["127.0.0.1:9092", "127.0.0.1:9093"]  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="unknown streams URL"):
        create_streams("redis://localhost")
    with pytest.raises(ValueError, match="no brokers"):
        create_streams("kafka://")


async def test_undecodable_record_is_dead_lettered_without_calling_the_handler() -> None:
    published: list[tuple[str, str, Event]] = []

    async def publish(topic: str, key: str, event: Event) -> None:
        published.append((topic, key, event))

    async def handler(_: Event) -> None:
        raise AssertionError("never called")

    deliverer = Deliverer("g1", handler, RetryPolicy(), publish, StreamsMetrics())
    await deliverer.deliver(Record("orders", 2, 7, "k", b"\xffnot an envelope"))

    [(topic, key, wrapper)] = published
    letter = DeadLetter.model_validate(wrapper.payload)
    assert (topic, key) == ("dlq.g1", "k")
    assert (letter.topic, letter.partition, letter.offset) == ("orders", 2, 7)
    assert letter.error.type == "EnvelopeError"
    assert letter.error.attempts == 0
    assert letter.original is None
    assert letter.raw is not None
    assert letter.raw.endswith("not an envelope")


def test_retry_policy_backs_off_exponentially_up_to_a_cap() -> None:
    policy = RetryPolicy(initial_backoff=0.1, multiplier=2, max_backoff=0.5, jitter=0)
    assert [policy.delay(n) for n in (1, 2, 3, 4)] == [0.1, 0.2, 0.4, 0.5]
    assert not RetryPolicy(give_up_on=(KeyError,)).retryable(KeyError("x"))
