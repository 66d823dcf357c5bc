"""The live-session cache: what `AuthService.principal_for` would read, kept for a few seconds.

Every authenticated request used to cost a database round trip to check that its session is
still live. The cache keeps the answer per session id for `auth.session_cache_seconds` (at most a
few seconds) and at most `max_entries` sessions. Revocation still bites at once: whatever revokes
a session (logout, password change, password reset, refresh-token reuse) evicts it here after
its transaction commits, and the `auth.sessions` event carries the ids to every other instance,
whose consumer evicts them there (`streams/auth_revocations.py`). The TTL bounds how stale an
entry can be even if that event is lost.

An evicted id is remembered as revoked for one TTL, so a request that read the session from the
database just before the revocation committed cannot put it back afterwards. All of this runs on
the event loop thread; no lock is needed.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable

from mitra.auth.principal import Principal

log = logging.getLogger("mitra.auth.sessions")

RevocationListener = Callable[[frozenset[uuid.UUID]], None]


class SessionCache:
    """Principals of live sessions by session id, for `ttl_seconds`; revocations evict them."""

    def __init__(
        self,
        ttl_seconds: float,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self._clock = clock
        self._live: dict[uuid.UUID, tuple[Principal, float]] = {}
        # Revoked ids and until when a `put` of them is refused (a read racing the revocation).
        self._revoked: dict[uuid.UUID, float] = {}
        self._listeners: list[RevocationListener] = []
        self.hits = 0
        self.misses = 0

    @property
    def enabled(self) -> bool:
        return self.ttl > 0

    def get(self, session_id: uuid.UUID) -> Principal | None:
        entry = self._live.get(session_id)
        if entry is None:
            self.misses += 1
            return None
        principal, expires = entry
        if expires <= self._clock():
            del self._live[session_id]
            self.misses += 1
            return None
        self.hits += 1
        return principal

    def put(self, principal: Principal) -> None:
        if not self.enabled:
            return
        now = self._clock()
        session_id = principal.session_id
        refused_until = self._revoked.get(session_id)
        if refused_until is not None:
            if refused_until > now:
                return
            del self._revoked[session_id]
        if session_id not in self._live and len(self._live) >= self.max_entries:
            self._make_room(now)
        self._live[session_id] = (principal, now + self.ttl)

    def revoke(self, session_ids: Iterable[uuid.UUID]) -> frozenset[uuid.UUID]:
        """Evict these sessions, refuse to cache them again for one TTL, tell the listeners.

        Called by the instance that revoked them (after its commit) and again by the
        `auth.sessions` consumer on every instance, that one included: listeners must be
        idempotent. Returns the ids.
        """
        ids = frozenset(session_ids)
        if not ids:
            return ids
        now = self._clock()
        if len(self._revoked) >= self.max_entries:
            self._revoked = {k: v for k, v in self._revoked.items() if v > now}
        for session_id in ids:
            self._live.pop(session_id, None)
            self._revoked[session_id] = now + max(self.ttl, 0.0)
        for listener in list(self._listeners):
            try:
                listener(ids)
            except Exception:
                # One bad listener must not keep the others (or the cache) from the revocation.
                log.exception("a session revocation listener failed")
        return ids

    def add_listener(self, callback: RevocationListener) -> Callable[[], None]:
        self._listeners.append(callback)

        def remove() -> None:
            if callback in self._listeners:
                self._listeners.remove(callback)

        return remove

    def clear(self) -> None:
        self._live.clear()

    def __len__(self) -> int:
        return len(self._live)

    def _make_room(self, now: float) -> None:
        # Drop the expired entries; if every entry is live, drop the oldest tenth (insertion
        # order is age order, since an entry is re-put only after it expired or was evicted).
        self._live = {k: v for k, v in self._live.items() if v[1] > now}
        if len(self._live) >= self.max_entries:
            for key in list(self._live)[: max(1, self.max_entries // 10)]:
                del self._live[key]
