"""Revoked sessions as events: the `auth.sessions` payload and how a revocation emits it.

The payload is defined here, in the core, because the services that revoke sessions emit it
through the outbox in the revoking transaction and the core may not import `streams`; the topic
catalog (`streams.topics.AUTH_SESSIONS`) names it. Every instance consumes the topic in a group
of its own and evicts the ids from its session cache (`streams/auth_revocations.py`).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection

from pydantic import BaseModel, ConfigDict

from mitra.db import UnitOfWork

TOPIC = "auth.sessions"
"""Revoked sessions, keyed by user id (`streams.topics.AUTH_SESSIONS`)."""
SESSIONS_REVOKED = "auth.sessions_revoked"


class SessionsRevoked(BaseModel):
    """Sessions of one user that must no longer authenticate anything."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    user_id: uuid.UUID
    session_ids: list[uuid.UUID]
    reason: str


def emit_revoked(
    uow: UnitOfWork,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID,
    session_ids: Collection[uuid.UUID],
    reason: str,
) -> None:
    """Queue the revocation event in `uow`'s transaction (nothing when no session was revoked)."""
    if not session_ids:
        return
    payload = SessionsRevoked(
        user_id=user_id, session_ids=sorted(session_ids), reason=reason
    ).model_dump(mode="json")
    uow.emit(TOPIC, str(user_id), SESSIONS_REVOKED, payload, tenant_id=tenant_id)
