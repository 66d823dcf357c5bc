"""The `analytics` consumer group: folds `analytics.events` into per-tenant daily figures.

Each event is applied in one transaction that also records its id for the group
(`streams.processed.consume_once`), so a redelivery, or a replay of the topic from the start,
leaves the figures as they were. Event types the domain does not count are ignored (and
counted as such), never dead-lettered; a counted type with an unusable payload is a producer
bug and goes to `dlq.analytics` at once, since retrying cannot fix it.
"""

from __future__ import annotations

import logging
import uuid

from aioprometheus.collectors import Counter, Registry
from pydantic import ValidationError

from mitra.analytics import EVENT_TYPES, AnalyticsFact, AnalyticsService, fold, increments
from mitra.db import Database, Scope
from mitra.errors import InvalidInput
from streams.base import RetryPolicy, Streams, Subscription
from streams.envelope import Event
from streams.errors import StreamsError
from streams.processed import consume_once
from streams.topics import ANALYTICS_EVENTS

log = logging.getLogger(__name__)

GROUP = "analytics"


class UnusableFact(StreamsError):
    """An analytics event of a counted type whose payload cannot be counted."""

    code = "unusable_fact"
    default_message = "unusable analytics fact"


RETRY = RetryPolicy(give_up_on=(UnusableFact,))


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
    ) -> None:
        self.database = database
        self.streams = streams
        self.service = service
        self.group = group
        self.topic = topic
        self.retry = retry
        self.events = Counter(
            "mitra_analytics_events_total",
            "Analytics events by type and outcome (counted, ignored, duplicate).",
            registry=registry if registry is not None else Registry(),
        )
        self.subscription: Subscription | None = None

    async def start(self, *, offset_reset: str = "earliest") -> Subscription:
        self.subscription = await self.streams.subscribe(
            [self.topic], self.group, self.handle, retry=self.retry, offset_reset=offset_reset
        )
        return self.subscription

    async def stop(self) -> None:
        if self.subscription is not None:
            await self.subscription.stop()
            self.subscription = None

    async def handle(self, event: Event) -> None:
        """Apply one event to the figures, at most once for this group."""
        if event.type not in EVENT_TYPES:
            self._count(event, "ignored")
            return
        try:
            fact = AnalyticsFact.model_validate(event.payload)
            changes = increments(event.type, fact)
            tenant_id = uuid.UUID(event.tenant_id)
        except (ValidationError, InvalidInput, ValueError) as exc:
            raise UnusableFact(f"{event.type} {event.id}: {exc}") from exc
        if not changes:
            self._count(event, "ignored")
            return
        async with consume_once(
            self.database, self.group, event, scope=Scope.tenant(tenant_id)
        ) as session:
            if session is None:
                self._count(event, "duplicate")
                return
            await fold(
                session,
                tenant_id=tenant_id,
                day=self.service.day_of(event.occurred_at),
                agent_id=fact.agent_id,
                changes=changes,
            )
        self._count(event, "counted")

    def _count(self, event: Event, outcome: str) -> None:
        self.events.inc({"type": event.type, "outcome": outcome})
