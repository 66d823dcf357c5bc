"""Request and response models of `/api/v1/payments`."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import Field

from handlers.schemas.common import PageQuery, RequestModel, ResponseModel

Gateway = Literal["razorpay", "stripe"]
Status = Literal[
    "created", "order_placed", "authorised", "captured", "policy_credited", "receipt_sent",
    "failed", "expired", "compensated", "flagged",
]  # fmt: skip


GATEWAY_CHOICE = "left out: the agency's Razorpay if it has set it up, else its Stripe"


class OrderRequest(RequestModel):
    policy_id: uuid.UUID
    gateway: Gateway | None = Field(None, description=GATEWAY_CHOICE)


class LinkRequest(RequestModel):
    policy_id: uuid.UUID
    gateway: Gateway | None = Field(None, description=GATEWAY_CHOICE)
    send_to_conversation: bool = Field(
        False, description="also put the link in the customer's conversation as a message"
    )


class VerifyRequest(RequestModel):
    razorpay_order_id: str = Field(min_length=1, max_length=100)
    razorpay_payment_id: str = Field(min_length=1, max_length=100)
    razorpay_signature: str = Field(min_length=1, max_length=200)


class RefundRequest(RequestModel):
    amount: Decimal | None = Field(
        None, gt=0, max_digits=14, decimal_places=2, description="left out: all that is left"
    )
    reason: str = Field(min_length=1, max_length=200)


class ReconcileRequest(RequestModel):
    from_: datetime = Field(alias="from")
    to: datetime
    gateway: Gateway


class PaymentListQuery(PageQuery):
    status: Status | None = None
    gateway: Gateway | None = None
    policy_id: uuid.UUID | None = None
    date_from: date | None = None
    date_to: date | None = None


class StepResponse(ResponseModel):
    step: str
    at: datetime
    detail: dict[str, Any]


class RefundResponse(ResponseModel):
    id: uuid.UUID
    amount: Decimal
    reason: str
    status: str
    gateway_refund_id: str | None
    created_at: datetime


class PaymentResponse(ResponseModel):
    id: uuid.UUID
    policy_id: uuid.UUID
    policy_number: str
    customer_id: uuid.UUID
    agent_id: uuid.UUID
    gateway: Gateway
    kind: Literal["order", "link"]
    status: Status
    amount: Decimal
    currency: str
    gateway_order_id: str | None
    gateway_payment_id: str | None
    link_url: str | None = None
    expires_at: datetime
    captured_amount: Decimal | None
    refunded_amount: Decimal
    flag: str | None
    next_due_date: date | None
    created_at: datetime


class PaymentDetailResponse(PaymentResponse):
    steps: list[StepResponse]
    refunds: list[RefundResponse]


class OrderResponse(ResponseModel):
    """What Checkout needs: Razorpay's `key_id` and `order_id`, or Stripe's `client_secret`."""

    payment_id: uuid.UUID
    gateway: Gateway
    order_id: str
    amount: int = Field(description="in the currency's minor unit (paise)")
    currency: str
    key_id: str | None = None
    client_secret: str | None = None
    publishable_key: str | None = None
    status: Status


class LinkResponse(ResponseModel):
    payment_id: uuid.UUID
    gateway: Gateway
    link_id: str
    url: str
    amount: int = Field(description="in the currency's minor unit (paise)")
    currency: str
    expires_at: datetime
    sent_to_conversation: bool


class RefundCreated(ResponseModel):
    refund_id: uuid.UUID
    amount: Decimal
    status: str
    gateway_refund_id: str | None


class ReconcileItem(ResponseModel):
    payment_id: uuid.UUID | None
    gateway_payment_id: str | None
    ours: dict[str, Any] | None
    theirs: dict[str, Any] | None
    problem: str | None


class ReconcileResponse(ResponseModel):
    gateway: Gateway
    matched: list[ReconcileItem]
    mismatched: list[ReconcileItem]
    missing_at_gateway: list[ReconcileItem]
    missing_here: list[ReconcileItem]
