"""A small book of business for a tenant, so the console shows real work on first start.

About 20 customers and 30 policies across the lifecycle (some due this month, some in grace),
the tenant's first policyholder account linked to one customer, and an open conversation with
some history. Written through the same services as the API (with their analytics events), so
the dashboard counts it. Development only: the CLI refuses it in production.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select

from mitra.analytics import MESSAGE_SENT, AnalyticsFact, emit_analytics
from mitra.auth import Principal
from mitra.chat.conversations import open_customer_conversation
from mitra.customers import CustomerData, CustomerService
from mitra.db import Database, Scope
from mitra.errors import NotFound
from mitra.models import (
    Customer,
    Message,
    PolicyStatus,
    PolicyType,
    PremiumFrequency,
    Role,
    Tenant,
    User,
)
from mitra.policies import PolicyData, PolicyService
from mitra.records import india_today

NAMES = (
    "Aarav Mehta", "Priya Sharma", "Rohan Iyer", "Sneha Kulkarni", "Vikram Singh",
    "Ananya Reddy", "Kabir Khan", "Meera Nair", "Arjun Patel", "Kavya Joshi",
    "Rahul Verma", "Isha Gupta", "Siddharth Rao", "Pooja Desai", "Aditya Bose",
    "Neha Chauhan", "Karan Malhotra", "Divya Menon", "Manish Agarwal", "Lakshmi Pillai",
)  # fmt: skip
PLANS = (
    (PolicyType.TERM, "Jeevan Suraksha Term", "1000000.00", "950.00"),
    (PolicyType.ENDOWMENT, "Jeevan Anand", "500000.00", "2450.50"),
    (PolicyType.MONEY_BACK, "Bima Bachat", "300000.00", "1800.00"),
    (PolicyType.ULIP, "Growth Plus ULIP", "750000.00", "5000.00"),
    (PolicyType.HEALTH, "Arogya Health Cover", "500000.00", "1200.00"),
    (PolicyType.PENSION, "Jeevan Shanti Pension", "1500000.00", "8000.00"),
)
# 30 policies: most active, some due this month, some in grace, the rest across the lifecycle.
STATUSES = (
    [PolicyStatus.ACTIVE] * 18
    + [PolicyStatus.GRACE] * 4
    + [PolicyStatus.PENDING] * 3
    + [PolicyStatus.LAPSED] * 2
    + [PolicyStatus.MATURED, PolicyStatus.SURRENDERED, PolicyStatus.ACTIVE]
)
HISTORY = (
    ("holder", "Namaste! My premium reminder says it is due soon. Can I pay it online?"),
    ("agent", "Namaste! Yes, you can pay online. Your Jeevan Anand premium of ₹2450.50 is due."),
    ("holder", "Thank you. Is there a grace period if I am a few days late?"),
    ("agent", "Yes, 30 days for a yearly premium. Your cover continues during the grace period."),
    ("holder", "Great, I will pay this week."),
    ("agent", "Wonderful. Message me here if you need anything."),
)


@dataclass(frozen=True)
class SeededBook:
    customers: int
    policies: int
    conversations: int


async def seed_book(
    database: Database, customers: CustomerService, policies: PolicyService, tenant_slug: str
) -> SeededBook | None:
    """Seed the tenant's book unless it already has customers (then None: seeding is idempotent)."""
    tenant_id, agent, holder = await _people(database, tenant_slug)
    async with database.session(Scope.tenant(tenant_id)) as session:
        existing = (await session.execute(select(func.count()).select_from(Customer))).scalar_one()
    if existing:
        return None
    principal = Principal(agent.id, tenant_id, agent.role, uuid.uuid4(), agent.email)
    today = india_today()
    made = []
    for index, name in enumerate(NAMES):
        made.append(
            await customers.create(
                principal,
                CustomerData(
                    full_name=name,
                    phone=f"+9198{index:02d}{(index * 7919) % 1000000:06d}",
                    email=f"{name.split()[0].lower()}.{index}@example.in",
                    preferred_language="hi" if index % 3 == 0 else "en",
                    user_id=holder.id if holder is not None and index == 1 else None,
                ),
            )
        )
    for index, status in enumerate(STATUSES):
        kind, plan, assured, premium = PLANS[index % len(PLANS)]
        await policies.create(
            principal,
            PolicyData(
                policy_number=f"DEMO-{today.year}-{index + 1:04d}",
                customer_id=made[index % len(made)].id,
                policy_type=kind,
                plan_name=plan,
                sum_assured=Decimal(assured),
                premium_amount=Decimal(premium),
                premium_frequency=PremiumFrequency.YEARLY,
                start_date=today.replace(day=1) - timedelta(days=365 * (1 + index % 4)),
                next_due_date=_due(status, index, today),
                status=status,
            ),
        )
    conversations = await _conversations(database, tenant_id, agent, holder, made)
    return SeededBook(len(made), len(STATUSES), conversations)


def _due(status: PolicyStatus, index: int, today: date) -> date | None:
    if status is PolicyStatus.GRACE:
        return today - timedelta(days=3 + index % 10)  # missed, within the 30-day grace
    if status is PolicyStatus.ACTIVE:
        if index % 3:
            return today + timedelta(days=40 + index * 5)
        # Every third one falls due later this month (on its last day, near the month's end).
        month_end = (today.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
        return min(today + timedelta(days=index % 9 + 1), month_end)
    return None


async def _people(database: Database, slug: str) -> tuple[uuid.UUID, User, User | None]:
    """The tenant, the agent whose book it is (a senior agent, else an admin), a policyholder."""
    async with database.session(Scope.system()) as session:
        tenant_id = (
            await session.execute(select(Tenant.id).where(Tenant.slug == slug))
        ).scalar_one_or_none()
        if tenant_id is None:
            raise NotFound(f"no tenant {slug}")
        users = list(
            (
                await session.execute(
                    select(User).where(User.tenant_id == tenant_id).order_by(User.created_at)
                )
            ).scalars()
        )
    by_role = {role: [u for u in users if u.role is role] for role in Role}
    agents = by_role[Role.SENIOR_AGENT] or by_role[Role.SUPER_ADMIN] or by_role[Role.PROVIDER_ADMIN]
    if not agents:
        raise NotFound(f"tenant {slug} has no agent or admin to own the book")
    holders = by_role[Role.POLICYHOLDER]
    return tenant_id, agents[0], holders[0] if holders else None


async def _conversations(
    database: Database,
    tenant_id: uuid.UUID,
    agent: User,
    holder: User | None,
    made: list[Customer],
) -> int:
    """The linked customer's conversation with history, and a first word from two others."""
    now = datetime.now(UTC)
    threads: list[tuple[Customer, tuple[tuple[str, str], ...], User | None]]
    threads = [(made[1], HISTORY, holder)]
    threads += [
        (made[4], (("agent", "Hello! Your policy documents are ready."),), None),
        (made[7], (("agent", "Reminder: your premium falls due this month."),), None),
    ]
    async with database.unit_of_work(Scope.tenant(tenant_id)) as uow:
        for age, (customer, lines, member) in enumerate(threads):
            members = {agent.id} | ({member.id} if member is not None else set())
            conversation_id = await open_customer_conversation(
                uow, customer, members, created_by=agent.id
            )
            for seq, (who, body) in enumerate(lines, start=1):
                sender = agent.id if who == "agent" or member is None else member.id
                # The policyholder's conversation is the newest activity, the others older.
                sent_at = now - timedelta(hours=age * 5, minutes=10 * (len(lines) - seq + 1))
                uow.session.add(
                    Message(
                        tenant_id=tenant_id,
                        conversation_id=conversation_id,
                        seq=seq,
                        sender_id=sender,
                        client_msg_id=f"demo-{seq}",
                        body=body,
                        channel="app",
                        sent_at=sent_at,
                        sender_type="user",
                    )
                )
                emit_analytics(
                    uow,
                    MESSAGE_SENT,
                    AnalyticsFact(
                        agent_id=agent.id,
                        channel="app",
                        direction="outbound" if sender == agent.id else "inbound",
                    ),
                )
    return len(threads)
