"""Per-tenant daily analytics aggregates, folded from `analytics.events` by the consumer."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal

from sqlalchemy import Date, Index, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from mitra.db import Base, TenantOwned


class AnalyticsDaily(TenantOwned, Base):
    """One counter (and amount) for a tenant, a day, an agent (or none) and a metric.

    There is deliberately no unique key over (tenant, day, agent, metric, dimension): NULL agents
    make such a key behave differently on SQLite and PostgreSQL, and readers always SUM, so a
    second row for the same cell (two consumers racing during a rebalance) changes no figure.
    """

    __tablename__ = "analytics_daily"
    __table_args__ = (Index("ix_analytics_daily_lookup", "tenant_id", "day", "metric"),)

    day: Mapped[date] = mapped_column(Date)
    agent_id: Mapped[uuid.UUID | None]
    metric: Mapped[str] = mapped_column(String(50))
    dimension: Mapped[str] = mapped_column(String(100), default="")
    count: Mapped[int] = mapped_column(default=0)
    amount: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=Decimal("0.00"))
