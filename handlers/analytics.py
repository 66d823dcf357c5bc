"""`/api/v1/analytics`: the dashboard figures, folded from events by the analytics consumer."""

from __future__ import annotations

from aiohttp import web

from handlers.envelope import ok
from handlers.keys import ANALYTICS
from handlers.openapi import operation
from handlers.schemas.analytics import AnalyticsDashboardResponse, DashboardQuery
from handlers.security import authenticate
from handlers.validation import parse_query

routes = web.RouteTableDef()


@routes.get("/api/v1/analytics/dashboard")
@operation(
    "Analytics dashboard",
    description="Daily figures folded from events: the tenant's for admins, an agent's own.",
    tags=("analytics",),
    query=DashboardQuery,
    response=AnalyticsDashboardResponse,
    errors=(403,),
)
async def dashboard(request: web.Request) -> web.Response:
    """Admins get their tenant's figures, agents their own; policyholders get 403."""
    principal = await authenticate(request)
    query = parse_query(request, DashboardQuery)
    board = await request.app[ANALYTICS].dashboard(principal, query.start, query.end)
    return ok(AnalyticsDashboardResponse.of(board).model_dump(mode="json", by_alias=True))
