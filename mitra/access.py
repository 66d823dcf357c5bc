"""Who may do what to customers and policies: the role rules, in one table, for both services.

A rule gives each role a *reach* per action. Reads decide visibility: a record outside the
caller's read reach does not exist for them (404, so existence never leaks). A write on a record
they can see but whose write reach does not cover it is refused (403).
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, bindparam, select, true
from sqlalchemy.sql.elements import BindParameter

from mitra.auth.principal import Principal
from mitra.errors import Forbidden
from mitra.models import Customer, Policy, Role


class Action(enum.StrEnum):
    READ = "read"
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"  # also restore: undoing a delete is the same power
    DASHBOARD = "dashboard"


class Reach(enum.Enum):
    """How far an allowed action extends."""

    TENANT = "the whole tenant"
    OWN = "the caller's own book (records whose agent is the caller)"
    LINKED = "records of customers linked to the caller's account"
    NONE = "nothing"


_ADMIN = {
    Action.READ: Reach.TENANT,
    Action.CREATE: Reach.TENANT,
    Action.UPDATE: Reach.TENANT,
    Action.DELETE: Reach.TENANT,
    Action.DASHBOARD: Reach.TENANT,
}

# Customers and policies follow the same table: a customer is part of the book its policies are.
RULES: dict[Role, dict[Action, Reach]] = {
    Role.SUPER_ADMIN: _ADMIN,
    Role.PROVIDER_ADMIN: _ADMIN,
    Role.SENIOR_AGENT: {
        Action.READ: Reach.OWN,
        Action.CREATE: Reach.OWN,
        Action.UPDATE: Reach.OWN,
        Action.DELETE: Reach.NONE,
        Action.DASHBOARD: Reach.OWN,
    },
    Role.JUNIOR_AGENT: {
        Action.READ: Reach.OWN,
        Action.CREATE: Reach.NONE,
        Action.UPDATE: Reach.OWN,
        Action.DELETE: Reach.NONE,
        Action.DASHBOARD: Reach.OWN,
    },
    Role.POLICYHOLDER: {
        Action.READ: Reach.LINKED,
        Action.CREATE: Reach.NONE,
        Action.UPDATE: Reach.NONE,
        Action.DELETE: Reach.NONE,
        Action.DASHBOARD: Reach.NONE,
    },
}


def reach(principal: Principal, action: Action) -> Reach:
    return RULES[principal.role][action]


def customers_visible(principal: Principal) -> ColumnElement[bool]:
    """The WHERE clause limiting customers to those the caller may read."""
    return _customer_clause(principal, reach(principal, Action.READ))


def policies_visible(principal: Principal) -> ColumnElement[bool]:
    """The WHERE clause limiting policies to those the caller may read."""
    return _policy_clause(principal.user_id, reach(principal, Action.READ))


VIEWER = "mitra_viewer_id"
"""The bound parameter `policies_readable` compares with: the caller's user id."""
_VIEWER: BindParameter[uuid.UUID] = bindparam(VIEWER)
_READABLE: dict[Reach, ColumnElement[bool]] = {}


def policies_readable(principal: Principal) -> tuple[Reach, ColumnElement[bool]]:
    """`policies_visible` for statements built once and reused: the same rule, with the
    caller's id as the bound parameter `VIEWER` (pass `{VIEWER: principal.user_id}`), and the
    reach it depends on, which is what such a statement may be cached by."""
    allowed = reach(principal, Action.READ)
    clause = _READABLE.get(allowed)
    if clause is None:
        clause = _READABLE[allowed] = _policy_clause(_VIEWER, allowed)
    return allowed, clause


@dataclass(frozen=True)
class Owned:
    """What a write rule needs to know about a record: whose book it is in."""

    agent_id: uuid.UUID


def require(principal: Principal, action: Action, record: Owned | None = None) -> None:
    """Refuse (403) an action on a record the caller already can see, or a creation.

    For creation, `record` carries the agent the new record would belong to.
    """
    allowed = reach(principal, action)
    if allowed is Reach.TENANT:
        return
    if allowed is Reach.OWN and (record is None or record.agent_id == principal.user_id):
        return
    raise Forbidden(f"role {principal.role.value} may not {action.value} this record")


def require_update(principal: Principal, record: Owned, values: Mapping[str, Any]) -> None:
    """An update is a write on the record's book; handing the record to another agent
    (`agent_id` among the changes) is a write on that agent's book too."""
    require(principal, Action.UPDATE, record)
    if "agent_id" in values:
        require(principal, Action.UPDATE, Owned(values["agent_id"]))


def scoped_agent(principal: Principal, action: Action) -> uuid.UUID | None:
    """The agent whose book an aggregate (the dashboard) covers: None for the whole tenant."""
    allowed = reach(principal, action)
    if allowed is Reach.TENANT:
        return None
    if allowed is Reach.OWN:
        return principal.user_id
    raise Forbidden(f"role {principal.role.value} may not {action.value}")


def _customer_clause(principal: Principal, allowed: Reach) -> ColumnElement[bool]:
    if allowed is Reach.TENANT:
        return true()
    if allowed is Reach.OWN:
        return Customer.agent_id == principal.user_id
    if allowed is Reach.LINKED:
        return Customer.user_id == principal.user_id
    return Customer.id.is_(None)


def _policy_clause(
    viewer: uuid.UUID | BindParameter[uuid.UUID], allowed: Reach
) -> ColumnElement[bool]:
    """`viewer`: the caller's user id, or a bound parameter that will carry it."""
    if allowed is Reach.TENANT:
        return true()
    if allowed is Reach.OWN:
        return Policy.agent_id == viewer
    if allowed is Reach.LINKED:
        linked = select(Customer.id).where(Customer.user_id == viewer)
        return Policy.customer_id.in_(linked.scalar_subquery())
    return Policy.id.is_(None)
