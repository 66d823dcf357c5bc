"""Customers: the people in an agent's book, with role rules from `mitra.access`."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field, fields
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from mitra import access
from mitra.access import Action, Owned
from mitra.auth.principal import Principal
from mitra.chat.membership import link_account
from mitra.customer_search import search_customers
from mitra.db import Database, Scope, UnitOfWork, utcnow
from mitra.errors import Conflict, InvalidInput, NotFound
from mitra.models import Customer, Policy, Role
from mitra.phones import to_e164
from mitra.records import (
    AGENT_ROLES,
    ANALYTICS_TOPIC,
    UNSET,
    Page,
    PageRequest,
    Unset,
    count_of,
    fetch_page,
    india_today,
    require_user,
)


class CustomerSort(enum.StrEnum):
    NEWEST = "-created_at"
    OLDEST = "created_at"
    NAME = "full_name"
    NAME_DESC = "-full_name"


@dataclass(frozen=True)
class CustomerData:
    """A new customer. `agent_id` None means the caller's own book."""

    full_name: str
    phone: str
    email: str | None = None
    date_of_birth: date | None = None
    address: str | None = None
    preferred_language: str = "en"
    agent_id: uuid.UUID | None = None
    user_id: uuid.UUID | None = None


@dataclass(frozen=True)
class CustomerChanges:
    """A partial update: fields left UNSET are kept; None clears an optional field."""

    full_name: str | Unset = UNSET
    phone: str | Unset = UNSET
    email: str | Unset | None = UNSET
    date_of_birth: date | Unset | None = UNSET
    address: str | Unset | None = UNSET
    preferred_language: str | Unset = UNSET
    agent_id: uuid.UUID | Unset = UNSET
    user_id: uuid.UUID | Unset | None = UNSET

    def given(self) -> dict[str, Any]:
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if not isinstance(getattr(self, f.name), Unset)
        }


@dataclass(frozen=True)
class CustomerQuery:
    q: str | None = None
    agent_id: uuid.UUID | None = None
    sort: CustomerSort = CustomerSort.NEWEST
    page: PageRequest = field(default_factory=PageRequest)


_SORT_COLUMNS: dict[CustomerSort, ColumnElement[Any]] = {
    CustomerSort.NEWEST: Customer.created_at.desc(),
    CustomerSort.OLDEST: Customer.created_at.asc(),
    CustomerSort.NAME: Customer.full_name.asc(),
    CustomerSort.NAME_DESC: Customer.full_name.desc(),
}


class CustomerService:
    """Creates, lists, changes and soft-deletes customers; every write emits an analytics event."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def create(self, principal: Principal, data: CustomerData) -> Customer:
        agent_id = data.agent_id or principal.user_id
        access.require(principal, Action.CREATE, Owned(agent_id))
        async with self._db.unit_of_work(Scope.tenant(principal.tenant_id)) as uow:
            customer = Customer(
                id=uuid.uuid4(),
                tenant_id=principal.tenant_id,
                created_by=principal.user_id,
                updated_by=principal.user_id,
            )
            values = {f.name: getattr(data, f.name) for f in fields(data)}
            values["agent_id"] = agent_id
            await self._apply(uow.session, customer, values)
            uow.session.add(customer)
            await uow.session.flush()
            _emit(uow, "customer.created", customer, principal, sorted(values))
        return customer

    async def get(self, principal: Principal, customer_id: uuid.UUID) -> Customer:
        async with self._db.session(Scope.tenant(principal.tenant_id)) as session:
            return await self._visible(session, principal, customer_id)

    async def list(self, principal: Principal, query: CustomerQuery) -> Page[Customer]:
        conditions: list[ColumnElement[bool]] = [
            Customer.deleted_at.is_(None),
            access.customers_visible(principal),
        ]
        if query.agent_id is not None:
            conditions.append(Customer.agent_id == query.agent_id)
        if query.q:
            conditions.append(search_customers(query.q))
        statement = select(Customer).where(*conditions)
        async with self._db.session(Scope.tenant(principal.tenant_id)) as session:
            return await fetch_page(
                session,
                statement,
                count_of(statement),
                [_SORT_COLUMNS[query.sort], Customer.id.asc()],
                query.page,
            )

    async def update(
        self, principal: Principal, customer_id: uuid.UUID, changes: CustomerChanges
    ) -> Customer:
        async with self._db.unit_of_work(Scope.tenant(principal.tenant_id)) as uow:
            customer = await self._visible(uow.session, principal, customer_id)
            values = changes.given()
            access.require_update(principal, Owned(customer.agent_id), values)
            linked_before = customer.user_id
            await self._apply(uow.session, customer, values)
            customer.updated_by = principal.user_id
            await uow.session.flush()
            # A new customer has no conversations yet, so only an update has any to join.
            if customer.user_id is not None and customer.user_id != linked_before:
                await link_account(uow, customer, customer.user_id)
            _emit(uow, "customer.updated", customer, principal, sorted(values))
        return customer

    async def delete(self, principal: Principal, customer_id: uuid.UUID) -> None:
        async with self._db.unit_of_work(Scope.tenant(principal.tenant_id)) as uow:
            customer = await self._visible(uow.session, principal, customer_id)
            access.require(principal, Action.DELETE, Owned(customer.agent_id))
            live_policies = exists().where(
                Policy.customer_id == customer.id, Policy.deleted_at.is_(None)
            )
            if await uow.session.scalar(select(live_policies)):
                raise Conflict("the customer has policies: delete those first")
            customer.deleted_at = utcnow()
            customer.updated_by = principal.user_id
            _emit(uow, "customer.deleted", customer, principal, [])

    async def restore(self, principal: Principal, customer_id: uuid.UUID) -> Customer:
        async with self._db.unit_of_work(Scope.tenant(principal.tenant_id)) as uow:
            customer = await self._visible(uow.session, principal, customer_id, deleted=True)
            access.require(principal, Action.DELETE, Owned(customer.agent_id))
            customer.deleted_at = None
            customer.updated_by = principal.user_id
            _emit(uow, "customer.restored", customer, principal, [])
        return customer

    async def _visible(
        self,
        session: AsyncSession,
        principal: Principal,
        customer_id: uuid.UUID,
        *,
        deleted: bool = False,
    ) -> Customer:
        """The customer if the caller may read it; a deleted one only when asked for."""
        state = Customer.deleted_at.is_not(None) if deleted else Customer.deleted_at.is_(None)
        customer = await session.scalar(
            select(Customer).where(
                Customer.id == customer_id, state, access.customers_visible(principal)
            )
        )
        if customer is None:
            raise NotFound("customer not found")
        return customer

    async def _apply(
        self, session: AsyncSession, customer: Customer, values: dict[str, Any]
    ) -> None:
        for name, value in values.items():
            if name == "full_name":
                customer.full_name = _required_text(value, name, 200)
            elif name == "phone":
                customer.phone = normalise_phone(value)
            elif name == "email":
                customer.email = value.strip().lower() if value else None
            elif name == "date_of_birth":
                if value is not None and value > india_today():
                    raise InvalidInput.for_field(name, "must not be in the future")
                customer.date_of_birth = value
            elif name == "address":
                customer.address = (value.strip() or None) if value else None
            elif name == "preferred_language":
                customer.preferred_language = value
            elif name == "agent_id":
                await require_user(session, value, AGENT_ROLES, name, "agent")
                customer.agent_id = value
            elif name == "user_id":
                if value is not None:
                    await require_user(
                        session, value, frozenset({Role.POLICYHOLDER}), name, "policyholder"
                    )
                customer.user_id = value


def normalise_phone(value: str) -> str:
    try:
        return to_e164(value)
    except ValueError as exc:
        raise InvalidInput.for_field("phone", str(exc)) from None


def _required_text(value: str, field: str, limit: int) -> str:
    cleaned = value.strip()
    if not cleaned:
        raise InvalidInput.for_field(field, "must not be blank")
    if len(cleaned) > limit:
        raise InvalidInput.for_field(field, f"must be at most {limit} characters")
    return cleaned


def _emit(
    uow: UnitOfWork, event_type: str, customer: Customer, actor: Principal, changed: list[str]
) -> None:
    uow.emit(
        ANALYTICS_TOPIC,
        key=str(customer.tenant_id),
        event_type=event_type,
        payload={
            "customer_id": str(customer.id),
            "agent_id": str(customer.agent_id),
            "actor_id": str(actor.user_id),
            "changed": changed,
        },
    )
