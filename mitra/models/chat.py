"""Conversations, their members and their messages, numbered by `seq` within a conversation."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from mitra.db import Base, TenantOwned

SEQ_MAX = 2**31 - 1
"""The largest `seq` the columns hold (`messages.seq`, `last_read_seq`: INTEGER, 32 bits on
PostgreSQL); an input beyond it is refused before it reaches a query."""


class Conversation(TenantOwned, Base):
    """One chat: an agent with a customer, or staff among themselves."""

    __tablename__ = "conversations"

    customer_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("customers.id", ondelete="SET NULL"), index=True
    )
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    title: Mapped[str | None] = mapped_column(String(200))
    # Who answers the customer: "bot" (the assistant) or "agent"; NULL is the default mode
    # (`chatbot.default_mode`), so conversations from before the assistant need no backfill.
    mode: Mapped[str | None] = mapped_column(String(8))
    mode_changed_at: Mapped[datetime | None]


class ConversationMember(TenantOwned, Base):
    """A user in a conversation, with how far they have read."""

    __tablename__ = "conversation_members"
    __table_args__ = (UniqueConstraint("conversation_id", "user_id"),)

    conversation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE")
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    last_read_seq: Mapped[int] = mapped_column(default=0)


class Message(TenantOwned, Base):
    """An accepted message. `seq` is gap-free per conversation; the pair of sender and
    `client_msg_id` makes a client's retry after a lost ack return the first acceptance."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("conversation_id", "seq"),
        Index(
            "uq_messages_client_msg", "conversation_id", "sender_id", "client_msg_id", unique=True
        ),
        # A provider's message id (a WhatsApp wamid) is stored once, however often it is
        # redelivered; NULLs (app messages) never collide.
        Index("uq_messages_external_id", "tenant_id", "external_id", unique=True),
    )

    conversation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE")
    )
    seq: Mapped[int]
    sender_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    client_msg_id: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    channel: Mapped[str] = mapped_column(String(16), default="app")
    sent_at: Mapped[datetime]
    # "user" (sender_id says who), "customer" (a WhatsApp sender without an account), "bot",
    # "system".
    sender_type: Mapped[str] = mapped_column(String(16), default="user", server_default="user")
    external_id: Mapped[str | None] = mapped_column(String(128))
    # What the channel adds to the body: a reply's context, media, a location, contact cards.
    meta: Mapped[dict[str, Any] | None] = mapped_column(JSON)
