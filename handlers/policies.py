"""`/api/v1/policies`: policies with their lifecycle, listing and the agent dashboard."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from handlers.envelope import ok, utc_json
from handlers.keys import POLICIES
from handlers.openapi import operation
from handlers.records import page_request, path_id
from handlers.schemas.common import IdPath, PageOf
from handlers.schemas.policies import (
    CustomerSummary,
    DashboardResponse,
    DuePremium,
    DueSoon,
    GracePolicy,
    PolicyCreateRequest,
    PolicyListQuery,
    PolicyResponse,
    PolicyUpdateRequest,
)
from handlers.security import authenticate
from handlers.validation import parse_body, parse_query
from mitra.models import Policy, PolicyStatus
from mitra.policies import (
    DUE_WINDOW_DAYS,
    TRANSITIONS,
    Dashboard,
    PolicyChanges,
    PolicyData,
    PolicyQuery,
    PolicyRow,
)

routes = web.RouteTableDef()
TAGS = ("policies",)
LIFECYCLE = "Status changes follow the lifecycle: " + "; ".join(
    f"{status.value} → {', '.join(sorted(t.value for t in targets)) or 'final'}"
    for status, targets in TRANSITIONS.items()
)


def policy_response(policy: Policy) -> PolicyResponse:
    return PolicyResponse(
        id=policy.id,
        policy_number=policy.policy_number,
        customer_id=policy.customer_id,
        customer=CustomerSummary.model_validate(policy.customer),
        agent_id=policy.agent_id,
        policy_type=policy.policy_type,
        plan_name=policy.plan_name,
        sum_assured=policy.sum_assured,
        premium_amount=policy.premium_amount,
        premium_frequency=policy.premium_frequency,
        start_date=policy.start_date,
        maturity_date=policy.maturity_date,
        next_due_date=policy.next_due_date,
        status=policy.status,
        allowed_transitions=sorted(TRANSITIONS[policy.status]),
        created_at=policy.created_at,
        updated_at=policy.updated_at,
        created_by=policy.created_by,
        updated_by=policy.updated_by,
    )


_ALLOWED: dict[PolicyStatus, list[str]] = {
    status: [target.value for target in sorted(targets)] for status, targets in TRANSITIONS.items()
}


def _optional(value: Any) -> str | None:
    return None if value is None else str(value)


def policy_json(row: PolicyRow) -> dict[str, Any]:
    """A `POLICY_COLUMNS` row as `PolicyResponse` dumps it (the same keys, order and JSON
    forms, a test compares the two), without building the model: the read endpoints' hot path.
    """
    (
        policy_id,
        number,
        customer_id,
        full_name,
        phone,
        agent_id,
        policy_type,
        plan_name,
        sum_assured,
        premium_amount,
        frequency,
        start_date,
        maturity_date,
        next_due_date,
        status,
        created_at,
        updated_at,
        created_by,
        updated_by,
    ) = row
    customer = str(customer_id)
    return {
        "id": str(policy_id),
        "policy_number": number,
        "customer_id": customer,
        "customer": {"id": customer, "full_name": full_name, "phone": phone},
        "agent_id": str(agent_id),
        "policy_type": policy_type.value,
        "plan_name": plan_name,
        "sum_assured": str(sum_assured),
        "premium_amount": str(premium_amount),
        "premium_frequency": frequency.value,
        "start_date": start_date.isoformat(),
        "maturity_date": maturity_date.isoformat() if maturity_date is not None else None,
        "next_due_date": next_due_date.isoformat() if next_due_date is not None else None,
        "status": status.value,
        "allowed_transitions": _ALLOWED[status],
        "created_at": utc_json(created_at),
        "updated_at": utc_json(updated_at),
        "created_by": _optional(created_by),
        "updated_by": _optional(updated_by),
    }


# Registered before `/policies/{id}`, which would otherwise take "agent-dashboard" as an id.
@routes.get("/api/v1/policies/agent-dashboard")
@operation(
    "The caller's book at a glance",
    description="Agents see their own book, admins the agency's; policyholders are refused.",
    tags=TAGS,
    response=DashboardResponse,
    errors=(403,),
)
async def agent_dashboard(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    dashboard = await request.app[POLICIES].dashboard(principal)
    return ok(_dashboard_response(dashboard))


@routes.post("/api/v1/policies")
@operation(
    "Create a policy",
    description="Admins create for any agent; senior agents for themselves. " + LIFECYCLE,
    tags=TAGS,
    body=PolicyCreateRequest,
    response=PolicyResponse,
    status=201,
    errors=(403, 409),
)
async def create_policy(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    body = await parse_body(request, PolicyCreateRequest)
    policy = await request.app[POLICIES].create(principal, PolicyData(**dict(body)))
    return ok(policy_response(policy), message="policy created", status=201)


@routes.get("/api/v1/policies")
@operation(
    "List the policies the caller may see",
    tags=TAGS,
    query=PolicyListQuery,
    response=PageOf[PolicyResponse],
)
async def list_policies(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    query = parse_query(request, PolicyListQuery)
    filters = query.model_dump(exclude={"page", "limit"})
    page = await request.app[POLICIES].list_rows(
        principal, PolicyQuery(**filters, page=page_request(query.page, query.limit))
    )
    return ok(
        {
            "items": [policy_json(row) for row in page.items],
            "pagination": {
                "page": page.page,
                "limit": page.limit,
                "total": page.total,
                "pages": page.pages,
            },
        }
    )


@routes.get("/api/v1/policies/{id}")
@operation("Read a policy", tags=TAGS, path=IdPath, response=PolicyResponse, errors=(404,))
async def get_policy(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    row = await request.app[POLICIES].get_row(principal, path_id(request, "policy"))
    return ok(policy_json(row))


@routes.put("/api/v1/policies/{id}")
@operation(
    "Replace a policy",
    description="Every field as on creation; an omitted agent_id keeps the agent. " + LIFECYCLE,
    tags=TAGS,
    path=IdPath,
    body=PolicyCreateRequest,
    response=PolicyResponse,
    errors=(403, 404, 409),
)
async def replace_policy(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    policy_id = path_id(request, "policy")
    body = await parse_body(request, PolicyCreateRequest)
    changes = PolicyChanges.replacing(PolicyData(**dict(body)))
    policy = await request.app[POLICIES].update(principal, policy_id, changes)
    return ok(policy_response(policy), message="policy updated")


@routes.patch("/api/v1/policies/{id}")
@operation(
    "Change some of a policy's fields",
    description=LIFECYCLE,
    tags=TAGS,
    path=IdPath,
    body=PolicyUpdateRequest,
    response=PolicyResponse,
    errors=(403, 404, 409),
)
async def update_policy(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    policy_id = path_id(request, "policy")
    body = await parse_body(request, PolicyUpdateRequest)
    changes = PolicyChanges(**body.model_dump(exclude_unset=True))
    policy = await request.app[POLICIES].update(principal, policy_id, changes)
    return ok(policy_response(policy), message="policy updated")


@routes.delete("/api/v1/policies/{id}")
@operation("Delete a policy (soft; admins only)", tags=TAGS, path=IdPath, errors=(403, 404))
async def delete_policy(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    await request.app[POLICIES].delete(principal, path_id(request, "policy"))
    return ok(message="policy deleted")


@routes.post("/api/v1/policies/{id}/restore")
@operation(
    "Restore a deleted policy (admins only)",
    tags=TAGS,
    path=IdPath,
    response=PolicyResponse,
    errors=(403, 404, 409),
)
async def restore_policy(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    policy = await request.app[POLICIES].restore(principal, path_id(request, "policy"))
    return ok(policy_response(policy), message="policy restored")


def _due(policy: Policy) -> DuePremium:
    return DuePremium(
        policy_id=policy.id,
        policy_number=policy.policy_number,
        customer_id=policy.customer_id,
        customer_name=policy.customer.full_name,
        premium_amount=policy.premium_amount,
        next_due_date=policy.next_due_date,
        status=policy.status,
    )


def _dashboard_response(dashboard: Dashboard) -> DashboardResponse:
    return DashboardResponse(
        as_of=dashboard.as_of,
        agent_id=dashboard.agent_id,
        counts_by_status=dashboard.counts_by_status,
        due_soon=DueSoon(
            days=DUE_WINDOW_DAYS,
            count=dashboard.due_soon_count,
            total_amount=dashboard.due_soon_amount,
            items=[_due(policy) for policy in dashboard.due_soon],
        ),
        in_grace=[
            GracePolicy(**dict(_due(entry.policy)), grace_ends_on=entry.grace_ends_on)
            for entry in dashboard.in_grace
        ],
        new_this_month=dashboard.new_this_month,
    )
