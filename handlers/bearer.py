"""The bearer token of a request, apart from what it unlocks (keys import nothing from here)."""

from __future__ import annotations

from aiohttp import web


def bearer_token(request: web.Request) -> str:
    """The token of `Authorization: Bearer <token>`, or "" when there is none."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""
