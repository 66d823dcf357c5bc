"""The one envelope every event travels in, encoded as JSON with orjson."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from streams.errors import EnvelopeError


def utc_now() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.now(UTC)


class Event(BaseModel):
    """An immutable event: `{id, type, tenant_id, key, occurred_at, version, payload}`.

    `key` decides the partition (same key, same partition, handled in order); `payload` is the
    topic's typed model dumped to JSON-compatible data (see `streams.topics.Topic.event`).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: UUID = Field(default_factory=uuid4)
    type: str = Field(min_length=1)
    tenant_id: str
    key: str
    occurred_at: datetime = Field(default_factory=utc_now)
    version: int = Field(default=1, ge=1)
    payload: dict[str, Any] = Field(default_factory=dict)

    @field_validator("occurred_at")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        # A naive datetime would be ambiguous on the wire; we refuse to guess its zone.
        if value.tzinfo is None:
            raise ValueError("occurred_at must be timezone-aware")
        return value.astimezone(UTC)

    def encode(self) -> bytes:
        """The envelope as compact JSON bytes; `occurred_at` is UTC ISO 8601."""
        return orjson.dumps(self.model_dump(mode="json"))

    @classmethod
    def decode(cls, data: bytes | bytearray | memoryview | str | None) -> Event:
        """Parse an envelope; raise `EnvelopeError` (never a bare JSON or pydantic error)."""
        if data is None:
            raise EnvelopeError("event value is empty (tombstone or null record)")
        try:
            raw = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise EnvelopeError(f"event is not valid JSON: {exc}") from exc
        if not isinstance(raw, dict):
            raise EnvelopeError(f"event must be a JSON object, not {type(raw).__name__}")
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            fields = ", ".join(".".join(map(str, e["loc"])) or "<root>" for e in exc.errors())
            raise EnvelopeError(f"event envelope is invalid ({fields}): {exc}") from exc


def encode_envelope(
    *,
    id: UUID,
    type: str,
    tenant_id: str,
    key: str,
    occurred_at: datetime,
    payload: Any,
    version: int = 1,
) -> bytes:
    """The bytes `Event(...).encode()` gives for these fields, without building the model.

    For a producer that already holds the fields as database values (the outbox relay): the
    model's validation and dump cost more than the rest of publishing a row. The checks are
    the model's own (so `Event.decode` accepts the result); a unit test keeps the bytes equal.
    Raises `EnvelopeError` for fields the model would refuse.
    """
    if not type or not isinstance(type, str):
        raise EnvelopeError("event type must be a non-empty string")
    if not isinstance(tenant_id, str) or not isinstance(key, str):
        raise EnvelopeError("tenant_id and key must be strings")
    if occurred_at.tzinfo is None:
        raise EnvelopeError("occurred_at must be timezone-aware")
    if not isinstance(payload, dict):
        raise EnvelopeError(f"payload must be a JSON object, not {payload.__class__.__name__}")
    if version < 1:
        raise EnvelopeError("version must be at least 1")
    fields = {
        # str(): asyncpg hands back its own UUID class, which orjson does not know.
        "id": str(id),
        "type": type,
        "tenant_id": tenant_id,
        "key": key,
        "occurred_at": occurred_at.astimezone(UTC),
        "version": version,
        "payload": payload,
    }
    try:
        # OPT_UTC_Z writes UTC as "Z", as pydantic does.
        return orjson.dumps(fields, option=orjson.OPT_UTC_Z)
    except orjson.JSONEncodeError as exc:
        raise EnvelopeError(f"payload is not JSON-serialisable: {exc}") from exc
