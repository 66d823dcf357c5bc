"""The assistant's records: knowledge-base articles, callback requests and LLM token usage."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from mitra.db import Base, TenantOwned

KB_FTS_TABLE = "kb_articles_fts"
"""SQLite's FTS5 index of the articles (PostgreSQL indexes an expression instead): made by the
migration on the dialect that has it, kept in step by `mitra.assistant.kb`, not mapped."""
KB_TSVECTOR_INDEX = "ix_kb_articles_search"


class KbArticle(TenantOwned, Base):
    """One question and its answer in an agency's knowledge base."""

    __tablename__ = "kb_articles"

    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text)
    intent: Mapped[str | None] = mapped_column(String(32))
    language: Mapped[str] = mapped_column(String(8), default="en")
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    # The tags as words, for the full-text index (which cannot read JSON on either database).
    tags_text: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    updated_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )


class CallbackRequest(TenantOwned, Base):
    """A customer handed over to their agent by the assistant, until the agent marks it done."""

    __tablename__ = "callback_requests"
    __table_args__ = (
        Index("ix_callback_requests_agent_status", "tenant_id", "agent_id", "status"),
    )

    conversation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE")
    )
    customer_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("customers.id", ondelete="SET NULL")
    )
    agent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    reason: Mapped[str] = mapped_column(String(32))
    # The last few messages as the agent should read them first: who wrote what.
    last_messages: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="open")
    done_at: Mapped[datetime | None]
    done_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class AssistantUsage(TenantOwned, Base):
    """LLM tokens a tenant used on one (India) day, as the provider's `usage` reported them."""

    __tablename__ = "assistant_usage"
    __table_args__ = (UniqueConstraint("tenant_id", "day", name="uq_assistant_usage_day"),)

    day: Mapped[date] = mapped_column(Date)
    tokens: Mapped[int] = mapped_column(default=0)


class AssistantSettings(TenantOwned, Base):
    """What a tenant changed of the assistant: the mode its customer conversations start in,
    and its own phrases per language and intent, laid over the built-in rules."""

    __tablename__ = "assistant_settings"
    __table_args__ = (UniqueConstraint("tenant_id", name="uq_assistant_settings_tenant"),)

    default_mode: Mapped[str | None] = mapped_column(String(8))
    phrases: Mapped[dict[str, dict[str, list[str]]]] = mapped_column(JSON, default=dict)
    updated_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
