"""This instance's reader of `auth.sessions`: revoked sessions leave every instance's cache.

Each instance consumes the whole topic in a consumer group of its own (a broadcast, like the chat
fan-out), from the latest offset: an instance that starts later has an empty session cache, so it
never needs older revocations. Handling an event twice is harmless (eviction is idempotent). A
lost event costs at most the session cache's TTL of staleness.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable

from streams.base import RetryPolicy, Streams, Subscription
from streams.envelope import Event
from streams.topics import AUTH_SESSIONS

log = logging.getLogger("mitra.streams.auth_revocations")

Revoked = Callable[[Iterable[uuid.UUID]], None]


class SessionRevocations:
    """Hands the session ids of each `auth.sessions` event to `revoked` (the auth service)."""

    def __init__(self, streams: Streams, instance_id: str, revoked: Revoked) -> None:
        self._streams = streams
        self.group = f"auth-revocations-{instance_id}"
        self._revoked = revoked
        self._subscription: Subscription | None = None

    async def start(self) -> None:
        self._subscription = await self._streams.subscribe(
            [AUTH_SESSIONS.name],
            self.group,
            self._handle,
            retry=RetryPolicy(max_attempts=2, initial_backoff=0.01),
            offset_reset="latest",
        )

    async def stop(self) -> None:
        if self._subscription is not None:
            await self._subscription.stop()

    @property
    def subscription(self) -> Subscription | None:
        return self._subscription

    async def _handle(self, event: Event) -> None:
        payload = AUTH_SESSIONS.payload(event)
        self._revoked(payload.session_ids)
