"""Policies: the lifecycle, listing with filters, the agent dashboard, and the writes' events."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Integer, bindparam, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, contains_eager
from sqlalchemy.sql import Select

from mitra import access
from mitra.access import Action, Owned
from mitra.auth.principal import Principal
from mitra.customer_search import search_customers
from mitra.db import Database, Scope, UnitOfWork, tenant_scoped, utcnow
from mitra.errors import Conflict, FieldError, InvalidInput, NotFound
from mitra.models import Customer, Policy, PolicyStatus, PolicyType, PremiumFrequency
from mitra.records import (
    AGENT_ROLES,
    ANALYTICS_TOPIC,
    UNSET,
    Page,
    PageRequest,
    Unset,
    escape_like,
    india_today,
    require_user,
)

CENTS = Decimal("0.01")
MAX_MONEY = Decimal("999999999999.99")

S = PolicyStatus
# The lifecycle. Anything not listed is impossible (409). A lapsed policy can be revived, or
# surrendered once it has acquired a surrender value; matured and surrendered are final.
TRANSITIONS: Mapping[PolicyStatus, frozenset[PolicyStatus]] = {
    S.PENDING: frozenset({S.ACTIVE}),
    S.ACTIVE: frozenset({S.GRACE, S.MATURED, S.SURRENDERED}),
    S.GRACE: frozenset({S.ACTIVE, S.LAPSED}),
    S.LAPSED: frozenset({S.ACTIVE, S.SURRENDERED}),
    S.MATURED: frozenset(),
    S.SURRENDERED: frozenset(),
}

# IRDAI's grace periods: 15 days after a missed monthly premium, 30 days for the other modes.
GRACE_DAYS = {
    PremiumFrequency.MONTHLY: 15,
    PremiumFrequency.QUARTERLY: 30,
    PremiumFrequency.HALF_YEARLY: 30,
    PremiumFrequency.YEARLY: 30,
}
DUE_WINDOW_DAYS = 30
DASHBOARD_LIST_LIMIT = 50


def check_transition(current: PolicyStatus, target: PolicyStatus) -> None:
    if target != current and target not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(TRANSITIONS[current])) or "nothing (final)"
        message = f"a {current.value} policy cannot become {target.value}; allowed: {allowed}"
        raise Conflict(message, errors=[FieldError("status", message)])


class PolicySort(enum.StrEnum):
    NEWEST = "-created_at"
    OLDEST = "created_at"
    DUE_SOONEST = "next_due_date"
    DUE_LATEST = "-next_due_date"
    PREMIUM = "premium_amount"
    PREMIUM_DESC = "-premium_amount"
    START = "start_date"
    START_DESC = "-start_date"
    NUMBER = "policy_number"


_SORT_COLUMNS: dict[PolicySort, ColumnElement[Any]] = {
    PolicySort.NEWEST: Policy.created_at.desc(),
    PolicySort.OLDEST: Policy.created_at.asc(),
    # SQLite and PostgreSQL disagree on where NULLs go; undated policies go last on both.
    PolicySort.DUE_SOONEST: Policy.next_due_date.asc().nulls_last(),
    PolicySort.DUE_LATEST: Policy.next_due_date.desc().nulls_last(),
    PolicySort.PREMIUM: Policy.premium_amount.asc(),
    PolicySort.PREMIUM_DESC: Policy.premium_amount.desc(),
    PolicySort.START: Policy.start_date.asc(),
    PolicySort.START_DESC: Policy.start_date.desc(),
    PolicySort.NUMBER: Policy.policy_number.asc(),
}


@dataclass(frozen=True)
class PolicyData:
    """A whole policy, for creation and replacement. `agent_id` None: the caller (on creation)
    or unchanged (on replacement)."""

    policy_number: str
    customer_id: uuid.UUID
    policy_type: PolicyType
    plan_name: str
    sum_assured: Decimal
    premium_amount: Decimal
    premium_frequency: PremiumFrequency
    start_date: date
    maturity_date: date | None = None
    next_due_date: date | None = None
    status: PolicyStatus = PolicyStatus.PENDING
    agent_id: uuid.UUID | None = None


@dataclass(frozen=True)
class PolicyChanges:
    """A partial update: UNSET fields are kept; None clears an optional date."""

    policy_number: str | Unset = UNSET
    customer_id: uuid.UUID | Unset = UNSET
    policy_type: PolicyType | Unset = UNSET
    plan_name: str | Unset = UNSET
    sum_assured: Decimal | Unset = UNSET
    premium_amount: Decimal | Unset = UNSET
    premium_frequency: PremiumFrequency | Unset = UNSET
    start_date: date | Unset = UNSET
    maturity_date: date | Unset | None = UNSET
    next_due_date: date | Unset | None = UNSET
    status: PolicyStatus | Unset = UNSET
    agent_id: uuid.UUID | Unset = UNSET

    def given(self) -> dict[str, Any]:
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if not isinstance(getattr(self, f.name), Unset)
        }

    @classmethod
    def replacing(cls, data: PolicyData) -> PolicyChanges:
        values = {f.name: getattr(data, f.name) for f in fields(data)}
        if values["agent_id"] is None:
            values["agent_id"] = UNSET
        return cls(**values)


@dataclass(frozen=True)
class PolicyQuery:
    """Filters of the policy listing; all of them narrow the caller's visible policies."""

    status: PolicyStatus | None = None
    policy_type: PolicyType | None = None
    agent_id: uuid.UUID | None = None
    customer_id: uuid.UUID | None = None
    due_before: date | None = None
    date_from: date | None = None
    date_to: date | None = None
    q: str | None = None
    sort: PolicySort = PolicySort.NEWEST
    page: PageRequest = field(default_factory=PageRequest)


# The columns of a policy as the API shows it, in this order, read as plain tuples: the REST
# reads (listing, one policy) build their answer from these without loading ORM objects.
POLICY_COLUMNS = (
    Policy.id,
    Policy.policy_number,
    Policy.customer_id,
    Customer.full_name,
    Customer.phone,
    Policy.agent_id,
    Policy.policy_type,
    Policy.plan_name,
    Policy.sum_assured,
    Policy.premium_amount,
    Policy.premium_frequency,
    Policy.start_date,
    Policy.maturity_date,
    Policy.next_due_date,
    Policy.status,
    Policy.created_at,
    Policy.updated_at,
    Policy.created_by,
    Policy.updated_by,
)
PolicyRow = Sequence[Any]
"""One row of `POLICY_COLUMNS`."""


@dataclass(frozen=True)
class GraceEntry:
    policy: Policy
    grace_ends_on: date | None


@dataclass(frozen=True)
class Dashboard:
    """An agent's (or, for admins, the agency's) book at a glance."""

    as_of: date
    agent_id: uuid.UUID | None
    counts_by_status: dict[PolicyStatus, int]
    due_soon: list[Policy]
    due_soon_count: int
    due_soon_amount: Decimal
    in_grace: list[GraceEntry]
    new_this_month: int


class PolicyService:
    """Policies with their lifecycle and role rules; every write emits an analytics event."""

    def __init__(self, database: Database, today: Callable[[], date] = india_today) -> None:
        self._db = database
        self._today = today

    async def create(self, principal: Principal, data: PolicyData) -> Policy:
        agent_id = data.agent_id or principal.user_id
        access.require(principal, Action.CREATE, Owned(agent_id))
        values = {f.name: getattr(data, f.name) for f in fields(data)}
        values["agent_id"] = agent_id
        async with self._db.unit_of_work(Scope.tenant(principal.tenant_id)) as uow:
            policy = Policy(
                id=uuid.uuid4(),
                tenant_id=principal.tenant_id,
                created_by=principal.user_id,
                updated_by=principal.user_id,
            )
            await self._apply(uow.session, principal, policy, values, creating=True)
            uow.session.add(policy)
            await _flush(uow.session)
            _emit(uow, "policy.created", policy, principal, {"status": policy.status.value})
        return policy

    async def get_row(self, principal: Principal, policy_id: uuid.UUID) -> PolicyRow:
        """The policy as `POLICY_COLUMNS` if the caller may read it (404 otherwise)."""
        statement = _one_statement(principal)
        params = {"policy_id": policy_id, access.VIEWER: principal.user_id}

        def read(session: Session) -> PolicyRow | None:
            row: PolicyRow | None = session.execute(statement, params).first()
            return row

        row = await self._db.read_sync(Scope.tenant(principal.tenant_id), read)
        if row is None:
            raise NotFound("policy not found")
        return row

    async def list_rows(self, principal: Principal, query: PolicyQuery) -> Page[PolicyRow]:
        """The policies the caller may see, as rows of `POLICY_COLUMNS`, one page of them.

        Two statements, the page and the total. (One with `count(*) OVER ()` was measured
        slower: SQLite materialises every matching row with all its columns to count them.)
        """
        request = query.page
        params: dict[str, Any] = {
            access.VIEWER: principal.user_id,
            "limit": request.limit,
            "offset": request.offset,
        }
        statement, count = _listing_statements(principal, query)

        def read(session: Session) -> Page[PolicyRow]:
            rows = session.execute(statement, params).all()
            if request.offset == 0 and len(rows) < request.limit:
                total = len(rows)  # the whole listing is on this page: nothing to count
            else:
                total = int(session.scalar(count, params) or 0)
            return Page(rows, request.page, request.limit, total)

        return await self._db.read_sync(Scope.tenant(principal.tenant_id), read)

    async def update(
        self, principal: Principal, policy_id: uuid.UUID, changes: PolicyChanges
    ) -> Policy:
        async with self._db.unit_of_work(Scope.tenant(principal.tenant_id)) as uow:
            policy = await self._visible(uow.session, principal, policy_id)
            values = changes.given()
            access.require_update(principal, Owned(policy.agent_id), values)
            before = policy.status
            await self._apply(uow.session, principal, policy, values, creating=False)
            policy.updated_by = principal.user_id
            await _flush(uow.session)
            _emit(uow, "policy.updated", policy, principal, {"changed": sorted(values)})
            if policy.status != before:
                _emit(
                    uow,
                    "policy.status_changed",
                    policy,
                    principal,
                    {"from_status": before.value, "to_status": policy.status.value},
                )
        return policy

    async def delete(self, principal: Principal, policy_id: uuid.UUID) -> None:
        async with self._db.unit_of_work(Scope.tenant(principal.tenant_id)) as uow:
            policy = await self._visible(uow.session, principal, policy_id)
            access.require(principal, Action.DELETE, Owned(policy.agent_id))
            policy.deleted_at = utcnow()
            policy.updated_by = principal.user_id
            _emit(uow, "policy.deleted", policy, principal, {})

    async def restore(self, principal: Principal, policy_id: uuid.UUID) -> Policy:
        async with self._db.unit_of_work(Scope.tenant(principal.tenant_id)) as uow:
            policy = await self._visible(uow.session, principal, policy_id, deleted=True)
            access.require(principal, Action.DELETE, Owned(policy.agent_id))
            if policy.customer.deleted_at is not None:
                raise Conflict("the policy's customer is deleted: restore the customer first")
            policy.deleted_at = None
            policy.updated_by = principal.user_id
            _emit(uow, "policy.restored", policy, principal, {})
        return policy

    async def dashboard(self, principal: Principal) -> Dashboard:
        agent_id = access.scoped_agent(principal, Action.DASHBOARD)
        today = self._today()
        book: list[ColumnElement[bool]] = [Policy.deleted_at.is_(None)]
        if agent_id is not None:
            book.append(Policy.agent_id == agent_id)
        due = [
            *book,
            Policy.status.in_([PolicyStatus.ACTIVE, PolicyStatus.GRACE]),
            Policy.next_due_date >= today,
            Policy.next_due_date <= today + timedelta(days=DUE_WINDOW_DAYS),
        ]
        with_customer = (
            select(Policy).join(Policy.customer).options(contains_eager(Policy.customer))
        )
        async with self._db.session(Scope.tenant(principal.tenant_id)) as session:
            counted = await session.execute(
                select(Policy.status, func.count()).where(*book).group_by(Policy.status)
            )
            counts = dict.fromkeys(PolicyStatus, 0)
            for status, count in counted:
                counts[status] = count
            due_count, due_amount = (
                await session.execute(
                    select(
                        func.count(),
                        func.coalesce(func.sum(Policy.premium_amount), Decimal(0)),
                    ).where(*due)
                )
            ).one()
            due_soon = await session.scalars(
                with_customer.where(*due)
                .order_by(Policy.next_due_date, Policy.id)
                .limit(DASHBOARD_LIST_LIMIT)
            )
            in_grace = await session.scalars(
                with_customer.where(*book, Policy.status == PolicyStatus.GRACE)
                .order_by(Policy.next_due_date.asc().nulls_last(), Policy.id)
                .limit(DASHBOARD_LIST_LIMIT)
            )
            new_this_month = await session.scalar(
                select(func.count()).where(*book, Policy.start_date >= today.replace(day=1))
            )
        return Dashboard(
            as_of=today,
            agent_id=agent_id,
            counts_by_status=counts,
            due_soon=list(due_soon.unique()),
            due_soon_count=due_count,
            due_soon_amount=Decimal(due_amount).quantize(CENTS),
            in_grace=[GraceEntry(p, grace_ends_on(p)) for p in in_grace.unique()],
            new_this_month=new_this_month or 0,
        )

    async def _visible(
        self,
        session: AsyncSession,
        principal: Principal,
        policy_id: uuid.UUID,
        *,
        deleted: bool = False,
    ) -> Policy:
        """The policy (with its customer) if the caller may read it; deleted only when asked."""
        state = Policy.deleted_at.is_not(None) if deleted else Policy.deleted_at.is_(None)
        policy = await session.scalar(
            select(Policy)
            .join(Policy.customer)
            .options(contains_eager(Policy.customer))
            .where(Policy.id == policy_id, state, access.policies_visible(principal))
        )
        if policy is None:
            raise NotFound("policy not found")
        return policy

    async def _apply(
        self,
        session: AsyncSession,
        principal: Principal,
        policy: Policy,
        values: dict[str, Any],
        *,
        creating: bool,
    ) -> None:
        for name, value in values.items():
            if name == "policy_number":
                policy.policy_number = await _policy_number(session, policy, value)
            elif name == "plan_name":
                policy.plan_name = _text(value, name, 200)
            elif name in ("sum_assured", "premium_amount"):
                setattr(policy, name, money(value, name))
            elif name == "customer_id":
                policy.customer = await _customer(session, principal, value)
                policy.customer_id = value
            elif name == "agent_id":
                await require_user(session, value, AGENT_ROLES, name, "agent")
                policy.agent_id = value
            elif name == "status":
                if not creating:
                    check_transition(policy.status, value)
                policy.status = value
            else:
                setattr(policy, name, value)
        _check_dates(policy)


# Statements of the read paths, built once per reach (and sort) and reused with bound
# parameters: building a 19-column select and its cache key cost about a third of a read.
AnySelect = Select[*tuple[Any, ...]]
_ONE: dict[access.Reach, AnySelect] = {}
_LISTING: dict[tuple[access.Reach, PolicySort], tuple[AnySelect, AnySelect]] = {}


def _one_statement(principal: Principal) -> AnySelect:
    allowed, readable = access.policies_readable(principal)
    statement = _ONE.get(allowed)
    if statement is None:
        statement = _ONE[allowed] = tenant_scoped(
            select(*POLICY_COLUMNS)
            .join(Customer, Customer.id == Policy.customer_id)
            .where(
                Policy.id == bindparam("policy_id"),
                Policy.deleted_at.is_(None),
                readable,
            )
        )
    return statement


def _listing_statements(principal: Principal, query: PolicyQuery) -> tuple[AnySelect, AnySelect]:
    """The page and count statements of a listing. Without filters (the common case) they
    are built once per reach and sort; filters make them per request."""
    conditions = _filters(query)
    key = (access.reach(principal, Action.READ), query.sort)
    if not conditions and key in _LISTING:
        return _LISTING[key]
    _, readable = access.policies_readable(principal)
    where = [Policy.deleted_at.is_(None), readable, *conditions]
    page = tenant_scoped(
        select(*POLICY_COLUMNS)
        .join(Customer, Customer.id == Policy.customer_id)
        .where(*where)
        .order_by(_SORT_COLUMNS[query.sort], Policy.id.asc())
        .limit(bindparam("limit", type_=Integer))
        .offset(bindparam("offset", type_=Integer))
    )
    count = tenant_scoped(
        select(func.count())
        .select_from(Policy)
        .join(Customer, Customer.id == Policy.customer_id)
        .where(*where)
    )
    if not conditions:
        _LISTING[key] = (page, count)
    return page, count


def grace_ends_on(policy: Policy) -> date | None:
    if policy.next_due_date is None:
        return None
    return policy.next_due_date + timedelta(days=GRACE_DAYS[policy.premium_frequency])


def money(value: Decimal, field: str) -> Decimal:
    """Rupees and paise: positive, at most two decimal places, within Numeric(14, 2)."""
    if not value.is_finite() or value <= 0:
        raise InvalidInput.for_field(field, "must be a positive amount")
    if value != value.quantize(CENTS):
        raise InvalidInput.for_field(field, "must have at most two decimal places")
    if value > MAX_MONEY:
        raise InvalidInput.for_field(field, f"must be at most {MAX_MONEY}")
    return value.quantize(CENTS)


def _filters(query: PolicyQuery) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if query.status is not None:
        conditions.append(Policy.status == query.status)
    if query.policy_type is not None:
        conditions.append(Policy.policy_type == query.policy_type)
    if query.agent_id is not None:
        conditions.append(Policy.agent_id == query.agent_id)
    if query.customer_id is not None:
        conditions.append(Policy.customer_id == query.customer_id)
    if query.due_before is not None:
        conditions.append(Policy.next_due_date <= query.due_before)
    if query.date_from and query.date_to and query.date_from > query.date_to:
        raise InvalidInput.for_field("date_to", "must not be before date_from")
    if query.date_from is not None:
        conditions.append(Policy.start_date >= query.date_from)
    if query.date_to is not None:
        conditions.append(Policy.start_date <= query.date_to)
    if query.q and query.q.strip():
        pattern = f"%{escape_like(query.q.strip())}%"
        conditions.append(
            or_(Policy.policy_number.ilike(pattern, escape="\\"), search_customers(query.q))
        )
    return conditions


async def _policy_number(session: AsyncSession, policy: Policy, value: str) -> str:
    number = _text(value, "policy_number", 40)
    taken = await session.scalar(
        select(Policy.id).where(Policy.policy_number == number, Policy.id != policy.id)
    )
    if taken is not None:
        raise _duplicate(number)
    return number


async def _customer(
    session: AsyncSession, principal: Principal, customer_id: uuid.UUID
) -> Customer:
    customer = await session.scalar(
        select(Customer).where(
            Customer.id == customer_id,
            Customer.deleted_at.is_(None),
            access.customers_visible(principal),
        )
    )
    if customer is None:
        raise InvalidInput.for_field("customer_id", "no such customer")
    return customer


def _check_dates(policy: Policy) -> None:
    if policy.maturity_date is not None and policy.maturity_date <= policy.start_date:
        raise InvalidInput.for_field("maturity_date", "must be after start_date")
    if policy.next_due_date is not None and policy.next_due_date < policy.start_date:
        raise InvalidInput.for_field("next_due_date", "must not be before start_date")


def _text(value: str, field: str, limit: int) -> str:
    cleaned = value.strip()
    if not cleaned:
        raise InvalidInput.for_field(field, "must not be blank")
    if len(cleaned) > limit:
        raise InvalidInput.for_field(field, f"must be at most {limit} characters")
    return cleaned


def _duplicate(number: str) -> Conflict:
    message = f"policy number {number!r} is already used in this agency"
    return Conflict(message, errors=[FieldError("policy_number", message)])


async def _flush(session: AsyncSession) -> None:
    try:
        await session.flush()
    except IntegrityError:
        # The pre-check lost a race with a concurrent insert; the constraint is the real guard.
        raise Conflict(
            "policy number is already used in this agency",
            errors=[FieldError("policy_number", "already used in this agency")],
        ) from None


def _emit(
    uow: UnitOfWork, event_type: str, policy: Policy, actor: Principal, extra: dict[str, Any]
) -> None:
    emit_policy_event(uow, event_type, policy, actor.user_id, extra)


def emit_policy_event(
    uow: UnitOfWork,
    event_type: str,
    policy: Policy,
    actor_id: uuid.UUID,
    extra: dict[str, Any],
) -> None:
    """A policy's analytics event, in the unit of work that changed it (any module's)."""
    uow.emit(
        ANALYTICS_TOPIC,
        key=str(policy.tenant_id),
        event_type=event_type,
        payload={
            "policy_id": str(policy.id),
            "policy_number": policy.policy_number,
            "customer_id": str(policy.customer_id),
            "agent_id": str(policy.agent_id),
            "policy_type": policy.policy_type.value,
            "premium_amount": str(policy.premium_amount),
            "premium_frequency": policy.premium_frequency.value,
            "status": policy.status.value,
            "actor_id": str(actor_id),
            **extra,
        },
    )
