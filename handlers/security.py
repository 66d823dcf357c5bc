"""Who is calling: bearer-token authentication and the client's address."""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web

from handlers.bearer import bearer_token
from handlers.keys import AUTH, SETTINGS
from mitra.auth import Principal
from mitra.auth.service import ClientInfo
from mitra.errors import Forbidden, Unauthorized
from mitra.models import Role
from mitra.observability.context import update_context

PRINCIPAL = web.RequestKey("principal", Principal)


async def authenticate(request: web.Request) -> Principal:
    """The caller's principal from `Authorization: Bearer`, resolved once per request."""
    if PRINCIPAL in request:
        return request[PRINCIPAL]
    token = bearer_token(request)
    if not token:
        raise Unauthorized("missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    principal = await request.app[AUTH].authenticate(token)
    request[PRINCIPAL] = principal
    update_context(user_id=str(principal.user_id), tenant_id=str(principal.tenant_id))
    return principal


async def require_role(request: web.Request, roles: Iterable[Role]) -> Principal:
    principal = await authenticate(request)
    if principal.role not in set(roles):
        raise Forbidden(f"role {principal.role.value} may not do this")
    return principal


def client_info(request: web.Request) -> ClientInfo:
    """The client's address; X-Forwarded-For is trusted only as far as configured proxies go."""
    hops = request.app[SETTINGS].server.trusted_proxy_count
    ip = request.remote or "unknown"
    if hops:
        forwarded = [part.strip() for part in request.headers.get("X-Forwarded-For", "").split(",")]
        forwarded = [part for part in forwarded if part]
        if len(forwarded) >= hops:
            ip = forwarded[-hops]
    return ClientInfo(ip=ip, user_agent=request.headers.get("User-Agent"))
