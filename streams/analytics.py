"""The `analytics` consumer group: folds `analytics.events` into per-tenant daily figures.

Each delivered batch is applied in one transaction: the facts' increments merged per cell in
memory, one upsert per cell, and the batch's event ids claimed for the group in one statement
(`streams.processed.claim_many`); only the facts whose id was not claimed before are counted, so
a redelivery, or a replay of the topic from the start, leaves the figures as they were. Event
types the domain does not count are ignored (and counted as such), never dead-lettered; a
counted type with an unusable payload is a producer bug: its batch fails, the streams layer
delivers that batch one event at a time, and the bad event alone goes to `dlq.analytics`.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter as Tally
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aioprometheus.collectors import Counter, Registry
from pydantic import ValidationError
from sqlalchemy.orm import Session

from mitra.analytics import (
    EVENT_TYPES,
    AnalyticsFact,
    AnalyticsService,
    Deltas,
    Increment,
    fold,
    increments,
)
from mitra.db import Database, Scope, db_purpose
from mitra.errors import InvalidInput
from streams.base import DEFAULT_MAX_BATCH, RetryPolicy, Streams, Subscription
from streams.envelope import Event
from streams.errors import StreamsError
from streams.processed import claim_many
from streams.topics import ANALYTICS_EVENTS

log = logging.getLogger(__name__)

GROUP = "analytics"
DB_PURPOSE = "analytics"
"""What the consumer's statements and commits count as in `mitra_db_*_total`."""


class UnusableFact(StreamsError):
    """An analytics event of a counted type whose payload cannot be counted."""

    code = "unusable_fact"
    default_message = "unusable analytics fact"


RETRY = RetryPolicy(give_up_on=(UnusableFact,))


@dataclass(frozen=True)
class _Counted:
    """A fact of a batch that moves figures, parsed before the transaction."""

    event: Event
    tenant_id: uuid.UUID
    agent_id: uuid.UUID | None
    changes: list[Increment]


class AnalyticsConsumer:
    """One member of the `analytics` group; every instance may run one (partitions are shared)."""

    def __init__(
        self,
        database: Database,
        streams: Streams,
        service: AnalyticsService,
        *,
        registry: Registry | None = None,
        group: str = GROUP,
        topic: str = ANALYTICS_EVENTS.name,
        retry: RetryPolicy = RETRY,
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> None:
        self.database = database
        self.streams = streams
        self.service = service
        self.group = group
        self.topic = topic
        self.retry = retry
        self.max_batch = max_batch
        self.events = Counter(
            "mitra_analytics_events_total",
            "Analytics events by type and outcome (counted, ignored, duplicate).",
            registry=registry if registry is not None else Registry(),
        )
        self.subscription: Subscription | None = None

    async def start(self, *, offset_reset: str = "earliest") -> Subscription:
        self.subscription = await self.streams.subscribe_batch(
            [self.topic],
            self.group,
            self.handle_batch,
            retry=self.retry,
            offset_reset=offset_reset,
            max_batch=self.max_batch,
        )
        return self.subscription

    async def stop(self) -> None:
        if self.subscription is not None:
            await self.subscription.stop()
            self.subscription = None

    async def handle_batch(self, events: Sequence[Event]) -> None:
        """Apply a batch to the figures in one transaction, each event at most once per group.

        Raises `UnusableFact` (before writing anything) if one event of the batch cannot be
        counted; the outcome counters move only once the transaction has committed.
        """
        outcomes: Tally[tuple[str, str]] = Tally()
        counted: dict[uuid.UUID, _Counted] = {}
        for event in events:
            fact = self._parse(event)
            if fact is None:
                outcomes[(event.type, "ignored")] += 1
            elif event.id in counted:
                outcomes[(event.type, "duplicate")] += 1  # twice in one batch
            else:
                counted[event.id] = fact
        if counted:
            with db_purpose(DB_PURPOSE):
                # A system scope, because a batch holds many tenants' facts: each row is
                # written for the tenant its event names, and nothing else is read or written.
                fresh = await self.database.write_sync(Scope.system(), self._apply(counted))
            for event_id, c in counted.items():
                outcomes[(c.event.type, "counted" if event_id in fresh else "duplicate")] += 1
        for (event_type, outcome), count in outcomes.items():
            self.events.add({"type": event_type, "outcome": outcome}, count)

    def _apply(self, counted: dict[uuid.UUID, _Counted]) -> Callable[[Session], set[uuid.UUID]]:
        """The batch's transaction: claim its ids, fold the facts of those not counted yet."""

        def apply(session: Session) -> set[uuid.UUID]:
            fresh = claim_many(session, self.group, counted)
            deltas = Deltas()
            for event_id in fresh:
                c = counted[event_id]
                deltas.add(
                    c.tenant_id, self.service.day_of(c.event.occurred_at), c.agent_id, c.changes
                )
            fold(session, deltas)
            return fresh

        return apply

    def _parse(self, event: Event) -> _Counted | None:
        """The fact's increments, or None if the event moves no figure."""
        if event.type not in EVENT_TYPES:
            return None
        try:
            fact = AnalyticsFact.model_validate(event.payload)
            changes = increments(event.type, fact)
            tenant_id = uuid.UUID(event.tenant_id)
        except (ValidationError, InvalidInput, ValueError) as exc:
            raise UnusableFact(f"{event.type} {event.id}: {exc}") from exc
        if not changes:
            return None
        return _Counted(event, tenant_id, fact.agent_id, changes)
