"""Premium payments run as sagas: the payment, its step log, verified webhooks and refunds."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from mitra.db import Base, TenantOwned
from mitra.models.policies import MONEY


class Payment(TenantOwned, Base):
    """One premium payment of one policy through one gateway, and where its saga stands.

    `status` is the saga's last recorded step; it only moves forward (`mitra.payments.saga`).
    `gateway_order_id` is the gateway's handle of what the customer pays (a Razorpay order or
    payment link, a Stripe PaymentIntent or Checkout Session); `gateway_payment_id` the
    captured payment (Razorpay `pay_…`, Stripe `pi_…`).
    """

    __tablename__ = "payments"
    __table_args__ = (
        Index("uq_payments_idempotency", "tenant_id", "idempotency_key", unique=True),
        Index("ix_payments_tenant_status", "tenant_id", "status"),
        Index("ix_payments_tenant_created", "tenant_id", "created_at"),
        Index("ix_payments_gateway_order", "gateway", "gateway_order_id"),
        Index("ix_payments_policy", "policy_id"),
    )

    policy_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("policies.id", ondelete="RESTRICT"))
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id", ondelete="RESTRICT"))
    agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    gateway: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(8))  # "order" (Checkout) or "link"
    status: Mapped[str] = mapped_column(String(24))
    amount: Mapped[Decimal] = mapped_column(MONEY)
    currency: Mapped[str] = mapped_column(String(3))
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    gateway_order_id: Mapped[str | None] = mapped_column(String(100))
    gateway_payment_id: Mapped[str | None] = mapped_column(String(100))
    # What the customer pays with: Checkout's key id or client secret, or the link's URL.
    checkout: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    expires_at: Mapped[datetime]
    captured_amount: Mapped[Decimal | None] = mapped_column(MONEY)
    refunded_amount: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))
    flag: Mapped[str | None] = mapped_column(String(300))
    conversation_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="SET NULL")
    )
    # The premium this payment is for (the policy's due date when it was made): a payment
    # whose premium another payment has already credited is flagged, not credited again.
    due_date: Mapped[date | None] = mapped_column(Date)
    next_due_date: Mapped[date | None] = mapped_column(Date)  # the policy's, once credited
    last_heard_at: Mapped[datetime]


class PaymentStep(TenantOwned, Base):
    """One step of a saga, written before the step is acted on."""

    __tablename__ = "payment_steps"
    __table_args__ = (Index("ix_payment_steps_payment", "payment_id", "created_at"),)

    payment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("payments.id", ondelete="CASCADE"))
    step: Mapped[str] = mapped_column(String(24))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class PaymentWebhook(TenantOwned, Base):
    """A verified gateway event, kept once per provider event id (redeliveries insert nothing)."""

    __tablename__ = "payment_webhooks"
    __table_args__ = (
        Index("uq_payment_webhooks_event", "tenant_id", "provider", "event_id", unique=True),
    )

    provider: Mapped[str] = mapped_column(String(16))
    event_id: Mapped[str] = mapped_column(String(200))
    event_type: Mapped[str] = mapped_column(String(64))
    payment_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("payments.id", ondelete="SET NULL")
    )
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)


class PaymentRefund(TenantOwned, Base):
    """A refund asked of the gateway; its state follows the refund webhooks."""

    __tablename__ = "payment_refunds"
    __table_args__ = (Index("ix_payment_refunds_payment", "payment_id"),)

    payment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("payments.id", ondelete="CASCADE"))
    amount: Mapped[Decimal] = mapped_column(MONEY)
    reason: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))  # requested, pending, processed, failed
    gateway_refund_id: Mapped[str | None] = mapped_column(String(100))
    requested_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
