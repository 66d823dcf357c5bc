"""Unit of work: one transaction in which domain rows and their outbox events commit together."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from mitra.db._base import utcnow

if TYPE_CHECKING:
    from mitra.db._database import Database, Scope


class UnitOfWork:
    """A scoped session in a transaction; `emit` queues an outbox event in the same transaction."""

    def __init__(self, session: AsyncSession, scope: Scope) -> None:
        self.session = session
        self.scope = scope
        self.emitted = 0

    def emit(
        self,
        topic: str,
        key: str,
        event_type: str,
        payload: dict[str, Any],
        *,
        tenant_id: uuid.UUID | None = None,
    ) -> uuid.UUID:
        """Record an event to publish after commit; returns the event id consumers dedupe on."""
        from mitra.models import OutboxEvent

        owner = tenant_id or self.scope.tenant_id
        if owner is None:
            raise ValueError("an event needs a tenant: pass tenant_id in a system-scoped unit")
        event = OutboxEvent(
            event_id=uuid.uuid4(),
            tenant_id=owner,
            topic=topic,
            key=key,
            event_type=event_type,
            payload=payload,
            occurred_at=utcnow(),
        )
        self.session.add(event)
        self.emitted += 1
        return event.event_id

    @classmethod
    @asynccontextmanager
    async def begin(cls, database: Database, scope: Scope) -> AsyncIterator[UnitOfWork]:
        async with database.transaction(scope) as session:
            unit = cls(session, scope)
            yield unit
        # Only after the commit: a relay woken earlier would not see the rows yet.
        if unit.emitted:
            database.notify_events_committed()
