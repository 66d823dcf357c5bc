"""Middlewares: request context and access log, error envelopes, allowed hosts and CORS."""

from __future__ import annotations

import logging
import re
import time
import uuid

from aiohttp import web
from aiohttp.typedefs import Handler

from handlers.envelope import failure
from handlers.keys import HTTP_METRICS, SETTINGS
from mitra.db import db_purpose
from mitra.errors import FieldError, MitraError
from mitra.observability.context import bind_context, current_context

log = logging.getLogger("mitra.http")
REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_HTTP_REASONS = {
    404: "no such route",
    405: "method not allowed",
    413: "request body too large",
}


def _route_name(request: web.Request) -> str:
    # The route's pattern, not the path: `/users/{id}` keeps metric label counts bounded.
    resource = request.match_info.route.resource
    if resource is None:
        return "unmatched"
    return resource.canonical


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Accept or generate X-Request-ID, log one line per request and record metrics."""
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    request_id = incoming if _REQUEST_ID_PATTERN.match(incoming) else uuid.uuid4().hex
    started = time.perf_counter()
    status = 500
    with bind_context(request_id=request_id), db_purpose("http"):
        try:
            response = await handler(request)
            status = response.status
            response.headers[REQUEST_ID_HEADER] = request_id
            return response
        finally:
            duration = time.perf_counter() - started
            route = _route_name(request)
            request.app[HTTP_METRICS].observe(route, request.method, status, duration)
            context = current_context()
            log.info(
                "request",
                extra={
                    "fields": {
                        "method": request.method,
                        "route": route,
                        "path": request.path,
                        "status": status,
                        "duration_ms": round(duration * 1000, 2),
                        "user_id": context.get("user_id"),
                        "tenant_id": context.get("tenant_id"),
                    }
                },
            )


@web.middleware
async def error_envelopes(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Domain errors and HTTP errors become the failure envelope; nothing leaks a stack trace."""
    try:
        return await handler(request)
    except MitraError as exc:
        return failure(exc.status, exc.message, exc.errors, headers=exc.headers, extra=exc.extra)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = _HTTP_REASONS.get(exc.status, exc.reason)
        headers = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}
        return failure(exc.status, message, headers=headers)
    except Exception:
        request_id = current_context().get("request_id")
        log.exception("unhandled error")
        return failure(
            500,
            "internal error",
            [FieldError(None, f"quote request id {request_id} when reporting this")],
            extra={"request_id": request_id},
        )


@web.middleware
async def allowed_hosts(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse requests whose Host header is not ours (DNS rebinding, cache poisoning)."""
    allowed = request.app[SETTINGS].server.allowed_hosts
    if "*" not in allowed:
        host = (request.host or "").rsplit(":", 1)[0].strip("[]").lower()
        if host not in allowed:
            return failure(400, "host not allowed", [FieldError("Host", f"{host!r} is not served")])
    return await handler(request)


@web.middleware
async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """CORS for the origins in settings; preflights are answered here, before routing's 405."""
    origin = request.headers.get("Origin")
    allowed = request.app[SETTINGS].server.cors_origins
    if origin is None or not (origin in allowed or "*" in allowed):
        return await handler(request)
    if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
        response: web.StreamResponse = web.Response(status=204)
        response.headers.update(
            {
                "Access-Control-Allow-Methods": "GET, POST, PUT, PATCH, DELETE, OPTIONS",
                "Access-Control-Allow-Headers": "Authorization, Content-Type, X-Request-ID",
                "Access-Control-Max-Age": "600",
            }
        )
    else:
        response = await handler(request)
    response.headers["Access-Control-Allow-Origin"] = origin
    response.headers["Access-Control-Expose-Headers"] = "X-Request-ID, Retry-After"
    response.headers["Vary"] = "Origin"
    return response


MIDDLEWARES = [request_context, error_envelopes, allowed_hosts, cors]
