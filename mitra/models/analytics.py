"""Per-tenant daily analytics aggregates, folded from `analytics.events` by the consumer."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal

from sqlalchemy import Date, Index, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from mitra.db import Base, TenantOwned

NO_AGENT = uuid.UUID(int=0)
"""`agent_key` of a figure credited to no agent."""


class AnalyticsDaily(TenantOwned, Base):
    """One counter (and amount) for a tenant, a day, an agent (or none), a metric and a dimension.

    Each such cell is one row, unique on (tenant, day, agent_key, metric, dimension), so that the
    consumer folds a whole batch with one upsert per cell and finds the row by the index. The key
    holds `agent_key`, which is `agent_id` or `NO_AGENT`, because a unique index treats NULLs as
    distinct on SQLite and PostgreSQL alike: with the nullable `agent_id` in it, figures of no
    agent would get a new row per upsert. Readers filter and group on `agent_id` as before.
    """

    __tablename__ = "analytics_daily"
    # Also the dashboard's index: its prefix (tenant_id, day) serves a range of days.
    __table_args__ = (
        Index(
            "uq_analytics_daily_cell",
            "tenant_id",
            "day",
            "agent_key",
            "metric",
            "dimension",
            unique=True,
        ),
    )

    day: Mapped[date] = mapped_column(Date)
    agent_id: Mapped[uuid.UUID | None]
    # No default: every writer is the fold, which derives it from agent_id.
    agent_key: Mapped[uuid.UUID]
    metric: Mapped[str] = mapped_column(String(50))
    dimension: Mapped[str] = mapped_column(String(100), default="")
    count: Mapped[int] = mapped_column(default=0)
    amount: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=Decimal("0.00"))
