"""This instance's reader of `auth.sessions`: revoked sessions leave every instance's cache.

A broadcast (`streams/broadcast.py`) from the latest offset: an instance that starts later has an
empty session cache, so it never needs older revocations. Handling an event twice is harmless
(eviction is idempotent). A lost event costs at most the session cache's TTL of staleness.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable

from streams.base import Streams
from streams.broadcast import Broadcast
from streams.envelope import Event
from streams.topics import AUTH_SESSIONS

Revoked = Callable[[Iterable[uuid.UUID]], None]


class SessionRevocations(Broadcast):
    """Hands the session ids of each `auth.sessions` event to `revoked` (the auth service)."""

    topic = AUTH_SESSIONS.name
    group_prefix = "auth-revocations"

    def __init__(self, streams: Streams, instance_id: str, revoked: Revoked) -> None:
        super().__init__(streams, instance_id)
        self._revoked = revoked

    async def _handle(self, event: Event) -> None:
        payload = AUTH_SESSIONS.payload(event)
        self._revoked(payload.session_ids)
