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
