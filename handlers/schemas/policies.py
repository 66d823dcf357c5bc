"""Models of the policy endpoints. Money is a decimal string out, a string or number in."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated

from pydantic import Field

from handlers.schemas.common import PageQuery, RequestModel, ResponseModel, omittable
from mitra.models import PolicyStatus, PolicyType, PremiumFrequency
from mitra.policies import PolicySort

Money = Annotated[
    Decimal,
    Field(
        gt=0,
        max_digits=14,
        decimal_places=2,
        description="rupees, at most two decimal places; send a string to avoid float rounding",
    ),
]
PolicyNumber = Field(min_length=1, max_length=40)
PlanName = Field(min_length=1, max_length=200)


class PolicyCreateRequest(RequestModel):
    """A whole policy; also the body of PUT, which replaces every field."""

    policy_number: str = PolicyNumber
    customer_id: uuid.UUID
    agent_id: uuid.UUID | None = Field(
        None, description="the servicing agent; default the caller (on PUT: unchanged)"
    )
    policy_type: PolicyType
    plan_name: str = PlanName
    sum_assured: Money
    premium_amount: Money
    premium_frequency: PremiumFrequency
    start_date: date
    maturity_date: date | None = None
    next_due_date: date | None = None
    status: PolicyStatus = PolicyStatus.PENDING


class PolicyUpdateRequest(RequestModel):
    """Any subset of the fields; a status change must follow the lifecycle (else 409)."""

    policy_number: str = omittable(min_length=1, max_length=40)
    customer_id: uuid.UUID = omittable()
    agent_id: uuid.UUID = omittable()
    policy_type: PolicyType = omittable()
    plan_name: str = omittable(min_length=1, max_length=200)
    sum_assured: Money = omittable()
    premium_amount: Money = omittable()
    premium_frequency: PremiumFrequency = omittable()
    start_date: date = omittable()
    maturity_date: date | None = None
    next_due_date: date | None = None
    status: PolicyStatus = omittable()


class PolicyListQuery(PageQuery):
    status: PolicyStatus | None = None
    policy_type: PolicyType | None = None
    agent_id: uuid.UUID | None = None
    customer_id: uuid.UUID | None = None
    due_before: date | None = Field(None, description="next premium due on or before this date")
    date_from: date | None = Field(None, description="policies starting on or after this date")
    date_to: date | None = Field(None, description="policies starting on or before this date")
    q: str | None = Field(
        None, max_length=100, description="part of the policy number, customer name or phone"
    )
    sort: PolicySort = PolicySort.NEWEST


class CustomerSummary(ResponseModel):
    id: uuid.UUID
    full_name: str
    phone: str


class PolicyResponse(ResponseModel):
    id: uuid.UUID
    policy_number: str
    customer_id: uuid.UUID
    customer: CustomerSummary
    agent_id: uuid.UUID
    policy_type: PolicyType
    plan_name: str
    sum_assured: Decimal
    premium_amount: Decimal
    premium_frequency: PremiumFrequency
    start_date: date
    maturity_date: date | None
    next_due_date: date | None
    status: PolicyStatus
    allowed_transitions: list[PolicyStatus] = Field(
        default_factory=list, description="the statuses this policy may move to next"
    )
    created_at: datetime
    updated_at: datetime
    created_by: uuid.UUID | None
    updated_by: uuid.UUID | None


class DuePremium(ResponseModel):
    policy_id: uuid.UUID
    policy_number: str
    customer_id: uuid.UUID
    customer_name: str
    premium_amount: Decimal
    next_due_date: date | None
    status: PolicyStatus


class GracePolicy(DuePremium):
    grace_ends_on: date | None


class DueSoon(ResponseModel):
    days: int
    count: int
    total_amount: Decimal
    items: list[DuePremium] = Field(description="the soonest first, at most 50")


class DashboardResponse(ResponseModel):
    as_of: date
    agent_id: uuid.UUID | None = Field(description="whose book; null for the whole agency")
    counts_by_status: dict[PolicyStatus, int]
    due_soon: DueSoon
    in_grace: list[GracePolicy] = Field(description="premium missed, not yet lapsed; at most 50")
    new_this_month: int = Field(description="policies starting in the current month")
