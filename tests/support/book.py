"""A tenant with one account of every role, and customers and policies in several books."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from mitra.models import Role
from mitra.records import india_today
from tests.support.api import Account, Api


@dataclass
class Book:
    """The cast of the role tests; `holder` is linked to `customer` (in `senior`'s book)."""

    admin: Account
    provider_admin: Account
    senior: Account
    junior: Account
    other_senior: Account
    holder: Account
    customer: dict[str, Any]
    policy: dict[str, Any]
    junior_customer: dict[str, Any]
    junior_policy: dict[str, Any]
    other_customer: dict[str, Any]
    other_policy: dict[str, Any]

    def by_role(self, role: Role) -> Account:
        return {
            Role.SUPER_ADMIN: self.admin,
            Role.PROVIDER_ADMIN: self.provider_admin,
            Role.SENIOR_AGENT: self.senior,
            Role.JUNIOR_AGENT: self.junior,
            Role.POLICYHOLDER: self.holder,
        }[role]


def customer_body(agent: Account | None = None, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"full_name": "Ravi Kumar", "phone": "98765 43210", **fields}
    if agent is not None:
        body["agent_id"] = agent.user_id
    return body


def policy_body(
    customer: dict[str, Any], agent: Account | None = None, **fields: Any
) -> dict[str, Any]:
    today = india_today()
    body: dict[str, Any] = {
        "policy_number": f"LIC-{uuid.uuid4().hex[:10].upper()}",
        "customer_id": customer["id"],
        "policy_type": "endowment",
        "plan_name": "Jeevan Anand",
        "sum_assured": "500000.00",
        "premium_amount": "2450.50",
        "premium_frequency": "quarterly",
        "start_date": (today - timedelta(days=400)).isoformat(),
        "maturity_date": date(today.year + 20, 1, 1).isoformat(),
        "next_due_date": (today + timedelta(days=10)).isoformat(),
        "status": "active",
        **fields,
    }
    if agent is not None:
        body["agent_id"] = agent.user_id
    return body


async def add_customer(api: Api, by: Account, **fields: Any) -> dict[str, Any]:
    _, body = await api.call(
        "POST", "/api/v1/customers", json=customer_body(**fields), token=by.access_token, expect=201
    )
    data: dict[str, Any] = body["data"]
    return data


async def add_policy(
    api: Api, by: Account, customer: dict[str, Any], **fields: Any
) -> dict[str, Any]:
    _, body = await api.call(
        "POST",
        "/api/v1/policies",
        json=policy_body(customer, **fields),
        token=by.access_token,
        expect=201,
    )
    data: dict[str, Any] = body["data"]
    return data


async def make_book(api: Api) -> Book:
    admin = await api.tenant()
    provider_admin = await api.user(admin, Role.PROVIDER_ADMIN)
    senior = await api.user(admin, Role.SENIOR_AGENT)
    junior = await api.user(admin, Role.JUNIOR_AGENT)
    other_senior = await api.user(admin, Role.SENIOR_AGENT)
    holder = await api.register(admin.tenant_slug)
    customer = await add_customer(api, senior, user_id=holder.user_id)
    policy = await add_policy(api, senior, customer)
    junior_customer = await add_customer(api, admin, agent=junior, full_name="Meena Iyer")
    junior_policy = await add_policy(api, admin, junior_customer, agent=junior)
    other_customer = await add_customer(
        api, other_senior, full_name="Arjun Singh", phone="+91-91234-56789"
    )
    other_policy = await add_policy(api, other_senior, other_customer)
    return Book(
        admin=admin,
        provider_admin=provider_admin,
        senior=senior,
        junior=junior,
        other_senior=other_senior,
        holder=holder,
        customer=customer,
        policy=policy,
        junior_customer=junior_customer,
        junior_policy=junior_policy,
        other_customer=other_customer,
        other_policy=other_policy,
    )
