"""Who may read `/metrics` in production: a bearer token or an allow-listed peer address."""

from __future__ import annotations

import hmac
import ipaddress

from aiohttp import web

from handlers.bearer import bearer_token
from mitra.errors import Forbidden, Unauthorized
from mitra.settings import MetricsSettings


class MetricsGuard:
    """Who may read `/metrics`: a bearer token or a peer address, as `[metrics]` settings say."""

    def __init__(self, settings: MetricsSettings) -> None:
        self._open = settings.is_open
        self._token = settings.token.encode()
        self._networks = [
            ipaddress.ip_network(network, strict=False) for network in settings.allowed_networks
        ]

    def check(self, request: web.Request) -> None:
        """Return when the request may read the metrics; raise 401 or 403 otherwise."""
        if self._open:
            return
        presented = bearer_token(request).encode()
        # Constant time, so the answer's timing does not leak the token a byte at a time.
        if self._token and presented and hmac.compare_digest(presented, self._token):
            return
        if self._peer_allowed(request.remote):
            return
        if self._token:
            raise Unauthorized(
                "metrics need the metrics bearer token", headers={"WWW-Authenticate": "Bearer"}
            )
        raise Forbidden("this address may not read the metrics")

    def _peer_allowed(self, remote: str | None) -> bool:
        # The TCP peer only: X-Forwarded-For is written by the client unless a proxy rewrites it.
        if not remote or not self._networks:
            return False
        try:
            address = ipaddress.ip_address(remote)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self._networks)
