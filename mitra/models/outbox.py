"""The transactional outbox (events written with the data) and the consumers' processed ids."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from mitra.db import Base, TenantOwned, utcnow


class OutboxEvent(TenantOwned, Base):
    """An event waiting for (or done with) publication.

    The key is an autoincrementing integer rather than a UUID because the relay must publish in
    commit order, and an integer primary key is the one sequence SQLite and PostgreSQL both keep.
    """

    __tablename__ = "outbox_events"
    __table_args__ = (Index("ix_outbox_events_unpublished", "published_at", "id"),)

    id: Mapped[int] = mapped_column(  # type: ignore[assignment]
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    event_id: Mapped[uuid.UUID] = mapped_column(unique=True, default=uuid.uuid4)
    topic: Mapped[str] = mapped_column(String(100))
    key: Mapped[str] = mapped_column(String(200))
    event_type: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    occurred_at: Mapped[datetime]
    published_at: Mapped[datetime | None]


class ProcessedEvent(Base):
    """An event id a consumer group has applied, written in the same transaction as its effects.

    The unique (group, event_id) pair is what makes a redelivered event a no-op: the consumer
    claims the id first, and a second claim of the same id inserts nothing.
    """

    __tablename__ = "processed_events"
    __table_args__ = (
        UniqueConstraint("group", "event_id"),
        # The pruner deletes the oldest first, a batch at a time, without scanning the table.
        Index("ix_processed_events_processed_at", "processed_at"),
    )

    group: Mapped[str] = mapped_column(String(100))
    event_id: Mapped[uuid.UUID]
    processed_at: Mapped[datetime] = mapped_column(default=utcnow)
