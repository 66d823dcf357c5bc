"""Messages sent to customers through WhatsApp: one row per message, recorded around the POST."""

from __future__ import annotations

import uuid

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from mitra.db import Base, TenantOwned


class WhatsAppSend(TenantOwned, Base):
    """The outbound side of one stored message.

    `state` is the sender's own record, written before and after each POST so that a crash in
    between is seen on restart and never sent twice: `posting` (a POST may be in flight),
    `retrying` (Meta refused it for now; safe to POST again), `sent` (Meta took it), `failed`
    (Meta refused it for good), `unknown` (a POST was in flight at a crash: not sent again).
    `status` is what Meta reported since, moving only forward: accepted, sent, delivered, read,
    or failed with `error_code`.
    """

    __tablename__ = "whatsapp_sends"
    __table_args__ = (Index("uq_whatsapp_sends_wamid", "tenant_id", "wamid", unique=True),)

    message_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), unique=True
    )
    conversation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE")
    )
    seq: Mapped[int] = mapped_column(Integer)
    to_phone: Mapped[str] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    wamid: Mapped[str | None] = mapped_column(String(128))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error_code: Mapped[int | None] = mapped_column(Integer)
    error_title: Mapped[str | None] = mapped_column(String(200))


class WhatsAppTemplate(TenantOwned, Base):
    """A message template of the tenant's WhatsApp Business Account, as last synced from Meta."""

    __tablename__ = "whatsapp_templates"
    __table_args__ = (
        Index("uq_whatsapp_templates_name", "tenant_id", "name", "language", unique=True),
    )

    meta_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(512))
    language: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(32))
    category: Mapped[str] = mapped_column(String(32))
    body_parameters: Mapped[int] = mapped_column(Integer, default=0)
    header_parameters: Mapped[int] = mapped_column(Integer, default=0)
