"""`/health` (liveness), `/ready` (dependencies) and `/metrics` (Prometheus)."""

from __future__ import annotations

import asyncio

from aiohttp import web
from aioprometheus.renderer import render

from handlers.envelope import failure, ok
from handlers.keys import METRICS, METRICS_COLLECTORS, METRICS_GUARD, READINESS_CHECKS
from handlers.openapi import RawResponse, operation
from handlers.schemas.common import HealthResponse, ReadyResponse
from mitra.errors import FieldError

routes = web.RouteTableDef()

CHECK_TIMEOUT_SECONDS = 2.0


@routes.get("/health")
@operation("Liveness", tags=("operations",), auth=False, response=HealthResponse)
async def health(request: web.Request) -> web.Response:
    return ok({"status": "alive"})


@routes.get("/ready")
@operation(
    "Readiness: every dependency answers",
    tags=("operations",),
    auth=False,
    response=ReadyResponse,
    errors=(503,),
)
async def ready(request: web.Request) -> web.Response:
    """Every registered check must pass within its timeout; 503 names the ones that failed."""
    checks = request.app[READINESS_CHECKS]
    names = list(checks)
    results = await asyncio.gather(
        *(asyncio.wait_for(checks[name](), CHECK_TIMEOUT_SECONDS) for name in names),
        return_exceptions=True,
    )
    report = {}
    failed = []
    for name, result in zip(names, results, strict=True):
        if isinstance(result, BaseException):
            detail = "timed out" if isinstance(result, TimeoutError) else str(result) or "failed"
            report[name] = {"ok": False, "detail": detail}
            failed.append(FieldError(name, detail))
        else:
            report[name] = {"ok": True}
    if failed:
        names_failed = ", ".join(error.field or "" for error in failed)
        return failure(503, f"not ready: {names_failed}", failed, extra={"checks": report})
    return ok({"status": "ready", "checks": report})


@routes.get("/metrics")
@operation(
    "Prometheus metrics",
    description="Open in development. When `metrics.token` is set, send it as"
    " `Authorization: Bearer <token>` (401 without it); a peer address inside"
    " `metrics.allowed_networks` needs no token (403 outside them when no token is set).",
    tags=("operations",),
    auth=False,
    raw=RawResponse("text/plain", {"type": "string"}, "Prometheus text exposition"),
    errors=(401, 403),
)
async def metrics(request: web.Request) -> web.Response:
    request.app[METRICS_GUARD].check(request)
    for collect in request.app[METRICS_COLLECTORS]:
        collect()
    body, headers = render(request.app[METRICS], request.headers.getall("Accept", []))
    return web.Response(body=body, headers=headers)
