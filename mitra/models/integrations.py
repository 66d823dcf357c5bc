"""Tenants' credentials for outside providers (WhatsApp, Razorpay, Stripe), encrypted at rest."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import JSON, ForeignKey, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from mitra.db import Base, TenantOwned


class TenantIntegration(TenantOwned, Base):
    """One provider's settings for one tenant: `config` is what may be shown (ids, numbers),
    `secrets` the AES-GCM sealed JSON of what may not (tokens, signing secrets)."""

    __tablename__ = "tenant_integrations"
    __table_args__ = (
        UniqueConstraint("tenant_id", "provider", name="uq_tenant_integrations_provider"),
    )

    provider: Mapped[str] = mapped_column(String(32))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    secrets: Mapped[bytes] = mapped_column(LargeBinary)
    updated_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
