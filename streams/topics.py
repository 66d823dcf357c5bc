"""The topic catalog: every topic Mitra uses, declared once with its key, partitions and payload."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Generic, Literal, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from mitra.analytics import TOPIC as ANALYTICS_TOPIC
from mitra.analytics import AnalyticsFact
from mitra.auth.revocation import TOPIC as AUTH_SESSIONS_TOPIC
from mitra.auth.revocation import SessionsRevoked
from mitra.records import IMPORTS_RESULTS_TOPIC, IMPORTS_ROWS_TOPIC
from streams.envelope import Event, utc_now

DEAD_LETTER_PREFIX = "dlq."
DEAD_LETTER_PARTITIONS = 3
DEAD_LETTER_EVENT_TYPE = "streams.dead_letter"


class Payload(BaseModel):
    """Base of every payload model: immutable, and unknown fields are an error, not a surprise."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class ChatCommand(Payload):
    """A client asks the conversation to accept a message (WebSocket or WhatsApp origin)."""

    conversation_id: UUID
    sender_id: UUID
    client_message_id: str
    body: str
    channel: Literal["app", "whatsapp"] = "app"


class ChatEvent(Payload):
    """A message the conversation accepted, with its sequence number; fanned out to sockets."""

    conversation_id: UUID
    seq: int
    message_id: UUID
    sender_id: UUID
    body: str
    channel: Literal["app", "whatsapp"] = "app"


class WhatsAppInbound(Payload):
    """One message or status from a verified Meta webhook (`mitra.whatsapp.webhook`), as Meta
    sent it in `data`; de-duplicated by its wamid downstream."""

    kind: Literal["message", "status"]
    phone_number_id: str
    wa_id: str
    profile_name: str | None = None
    data: dict[str, Any]


class WhatsAppOutbound(Payload):
    """A stored member's message to send to the conversation's customer on WhatsApp (the
    message as members see it, `StoredMessage.as_payload`)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    conversation_id: UUID
    seq: int
    message_id: UUID
    body: str
    meta: dict[str, Any] | None = None


class PaymentEvent(Payload):
    """A step of a payment saga (`payment.<step>`) or a verified provider webhook
    (`payment.webhook`, the gateway's event read by `mitra.payments.webhooks` in `event`)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    payment_id: UUID
    provider: Literal["razorpay", "stripe"]
    provider_event_id: str | None = None
    status: str
    amount: Decimal
    currency: str


class ImportRows(Payload):
    """One batch of an import's validated rows (after `after_row` up to `last_row`), sent by
    the import's pipeline to the writing stage on any instance (`mitra.imports.wire` makes and
    reads it). Clean values travel as JSON, typed again by their field on the writer's side;
    `cells` are the rows' cells as text (for the error report). Written only if the import's
    `committed_row` is `after_row` in run `retries` and `owner` still holds its lease."""

    import_id: UUID
    tenant_id: UUID
    agent_id: UUID
    uploaded_by: UUID
    import_type: Literal["customers", "policies", "customers_and_policies"]
    retries: int
    owner: str
    after_row: int
    last_row: int
    rows: list[tuple[int, dict[str, Any], dict[str, Any]]]
    """(row number, customer fields, policy fields)"""
    errors: list[tuple[int, str | None, str | None, str]]
    """(row number, column, value, message)"""
    cells: list[tuple[int, list[Any]]]
    retried: list[int]


class ImportResult(Payload):
    """The outcome of one committed batch of an import (rows up to `last_row`), written by the
    pipeline's writing stage through the outbox in the batch's own transaction."""

    import_id: UUID
    after_row: int = 0
    last_row: int
    created: int
    updated: int
    unchanged: int
    failed: int


# The analytics payload is defined by the domain (`mitra.analytics`), because domain services emit
# it through the outbox and the core may not import this package; the catalog names it here.
AnalyticsEvent = AnalyticsFact


class DeadLetterError(Payload):
    """Why an event was dead-lettered."""

    type: str
    message: str
    attempts: int


class DeadLetter(Payload):
    """An event a consumer group gave up on, with the error and where it was read from.

    `original` is the original envelope (as JSON data) when it could be decoded; otherwise
    `raw` holds the undecodable bytes as text (invalid UTF-8 replaced).
    """

    group: str
    topic: str
    partition: int
    offset: int
    error: DeadLetterError
    original: dict[str, Any] | None = None
    raw: str | None = None


P = TypeVar("P", bound=BaseModel)


@dataclass(frozen=True)
class TopicSpec:
    """What a broker needs to create a topic: its name and partition count."""

    name: str
    partitions: int


@dataclass(frozen=True)
class Topic(Generic[P]):
    """A topic declared once: name, what its key is, partition count, and the payload model."""

    name: str
    key: str
    partitions: int
    schema: type[P]
    description: str = ""

    def spec(self, prefix: str = "") -> TopicSpec:
        """The broker spec, optionally under a name prefix (tests use one per run)."""
        return TopicSpec(prefix + self.name, self.partitions)

    def event(
        self,
        *,
        type: str,  # the envelope's field name, so callers write type=...
        tenant_id: str,
        key: str,
        payload: P,
        occurred_at: datetime | None = None,
        version: int = 1,
    ) -> Event:
        """An envelope for this topic around a typed, validated payload."""
        if not isinstance(payload, self.schema):
            got = payload.__class__.__name__
            raise TypeError(f"{self.name} carries {self.schema.__name__}, not {got}")
        return Event(
            type=type,
            tenant_id=tenant_id,
            key=key,
            occurred_at=occurred_at or utc_now(),
            version=version,
            payload=payload.model_dump(mode="json"),
        )

    def payload(self, event: Event) -> P:
        """The event's payload parsed as this topic's model (raises pydantic's ValidationError)."""
        return self.schema.model_validate(event.payload)


CHAT_COMMANDS = Topic(
    "chat.commands", "conversation id", 12, ChatCommand, "messages offered to a conversation"
)
CHAT_EVENTS = Topic(
    "chat.events", "conversation id", 12, ChatEvent, "accepted messages, fanned out to sockets"
)
WHATSAPP_INBOUND = Topic(
    "whatsapp.inbound", "customer's WhatsApp id (wa_id)", 6, WhatsAppInbound,
    "verified Meta webhooks",
)  # fmt: skip
WHATSAPP_OUTBOUND = Topic(
    "whatsapp.outbound", "conversation id", 6, WhatsAppOutbound, "messages to send via Meta"
)
PAYMENTS_EVENTS = Topic(
    "payments.events", "payment id", 6, PaymentEvent, "payment saga steps and provider webhooks"
)
IMPORTS_ROWS = Topic(
    IMPORTS_ROWS_TOPIC, "import id", 6, ImportRows, "batches of validated rows of imports"
)
IMPORTS_RESULTS = Topic(
    IMPORTS_RESULTS_TOPIC, "import id", 6, ImportResult, "outcome of each written import batch"
)
ANALYTICS_EVENTS = Topic(
    ANALYTICS_TOPIC, "tenant id", 3, AnalyticsEvent, "facts folded into the analytics dashboard"
)

AUTH_SESSIONS = Topic(
    AUTH_SESSIONS_TOPIC,
    "user id",
    3,
    SessionsRevoked,
    "revoked sessions, evicted from every instance's session cache",
)

CATALOG: dict[str, Topic[Any]] = {
    t.name: t
    for t in (
        CHAT_COMMANDS,
        CHAT_EVENTS,
        WHATSAPP_INBOUND,
        WHATSAPP_OUTBOUND,
        PAYMENTS_EVENTS,
        IMPORTS_ROWS,
        IMPORTS_RESULTS,
        ANALYTICS_EVENTS,
        AUTH_SESSIONS,
    )
}


def dead_letter_topic(group: str) -> Topic[DeadLetter]:
    """The dead-letter topic of a consumer group, `dlq.<group>`, keyed like the original."""
    if not group:
        raise ValueError("a consumer group needs a name")
    return Topic(
        DEAD_LETTER_PREFIX + group,
        "the original event's key",
        DEAD_LETTER_PARTITIONS,
        DeadLetter,
        f"events the {group!r} group gave up on",
    )


def catalog_specs(prefix: str = "", groups: tuple[str, ...] = ()) -> list[TopicSpec]:
    """Specs for every catalog topic, plus the dead-letter topic of each named group."""
    specs = [t.spec(prefix) for t in CATALOG.values()]
    specs += [dead_letter_topic(g).spec(prefix) for g in groups]
    return specs


def partitions_of(name: str, default: int) -> int:
    """The catalog's partition count for a topic name, or `default` for unknown topics."""
    if name.startswith(DEAD_LETTER_PREFIX):
        return DEAD_LETTER_PARTITIONS
    topic = CATALOG.get(name)
    return topic.partitions if topic else default
