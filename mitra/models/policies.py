"""Customers of an agency and their insurance policies."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Date, ForeignKey, Index, Numeric, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from mitra.db import Base, TenantOwned, string_enum

# Rupees with paise; 12 integer digits is far beyond any real sum assured.
MONEY = Numeric(14, 2)


class PolicyType(enum.StrEnum):
    TERM = "term"
    ENDOWMENT = "endowment"
    MONEY_BACK = "money_back"
    ULIP = "ulip"
    WHOLE_LIFE = "whole_life"
    HEALTH = "health"
    PENSION = "pension"


class PremiumFrequency(enum.StrEnum):
    MONTHLY = "monthly"
    QUARTERLY = "quarterly"
    HALF_YEARLY = "half_yearly"
    YEARLY = "yearly"


class PolicyStatus(enum.StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    GRACE = "grace"
    LAPSED = "lapsed"
    MATURED = "matured"
    SURRENDERED = "surrendered"


class Audited:
    """Who created and last changed a row, and when (and whether) it was soft-deleted."""

    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    updated_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    deleted_at: Mapped[datetime | None]


class Customer(Audited, TenantOwned, Base):
    """A person in an agent's book, optionally linked to the policyholder account they use."""

    __tablename__ = "customers"
    __table_args__ = (
        Index("ix_customers_tenant_agent", "tenant_id", "agent_id"),
        Index("ix_customers_user_id", "user_id"),
        Index("ix_customers_phone", "phone"),
        # Imports match customers by phone, then email: without it, each batch's lookup
        # scanned the whole book on PostgreSQL (migration 0011).
        Index("ix_customers_email", "email"),
    )

    full_name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str] = mapped_column(String(20))
    email: Mapped[str | None] = mapped_column(String(254))
    date_of_birth: Mapped[date | None] = mapped_column(Date)
    address: Mapped[str | None] = mapped_column(String(500))
    preferred_language: Mapped[str] = mapped_column(String(8), default="en")
    agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class Policy(Audited, TenantOwned, Base):
    """One insurance policy of a customer, serviced by one agent."""

    __tablename__ = "policies"
    __table_args__ = (
        # A policy number is unique within the tenant, deleted or not, so a restore never collides.
        UniqueConstraint("tenant_id", "policy_number", name="uq_policies_tenant_policy_number"),
        Index("ix_policies_tenant_agent", "tenant_id", "agent_id"),
        Index("ix_policies_tenant_status", "tenant_id", "status"),
        Index("ix_policies_tenant_next_due", "tenant_id", "next_due_date"),
        Index("ix_policies_tenant_start", "tenant_id", "start_date"),
        Index("ix_policies_customer_id", "customer_id"),
    )

    policy_number: Mapped[str] = mapped_column(String(40))
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id", ondelete="RESTRICT"))
    agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    policy_type: Mapped[PolicyType] = mapped_column(string_enum(PolicyType, "policy_type"))
    plan_name: Mapped[str] = mapped_column(String(200))
    sum_assured: Mapped[Decimal] = mapped_column(MONEY)
    premium_amount: Mapped[Decimal] = mapped_column(MONEY)
    premium_frequency: Mapped[PremiumFrequency] = mapped_column(
        string_enum(PremiumFrequency, "premium_frequency")
    )
    start_date: Mapped[date] = mapped_column(Date)
    maturity_date: Mapped[date | None] = mapped_column(Date)
    next_due_date: Mapped[date | None] = mapped_column(Date)
    status: Mapped[PolicyStatus] = mapped_column(
        string_enum(PolicyStatus, "policy_status"), default=PolicyStatus.PENDING
    )

    customer: Mapped[Customer] = relationship(lazy="raise")
