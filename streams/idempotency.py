"""Idempotent handlers: skip events a consumer group already processed, by event id."""

from __future__ import annotations

from collections import OrderedDict
from typing import Protocol
from uuid import UUID

from streams.base import Handler
from streams.envelope import Event


class ProcessedStore(Protocol):
    """Remembers which event ids a consumer group has processed.

    Two methods, both keyed by (group, event id). A database-backed store should `record` in the
    same transaction as the handler's own writes: then "handled" and "recorded" cannot diverge,
    and a redelivered event has no effect at all. With a separate store (like the in-memory one)
    a crash between the handler and `record` runs the handler again: at-least-once, as usual.
    """

    async def seen(self, group: str, event_id: UUID) -> bool:
        """True if `record(group, event_id)` happened before."""
        ...

    async def record(self, group: str, event_id: UUID) -> None:
        """Remember that `group` processed `event_id`; recording twice is harmless."""
        ...


class InMemoryProcessedStore:
    """A `ProcessedStore` in a dict, bounded per group (oldest ids forgotten first)."""

    def __init__(self, max_per_group: int = 100_000) -> None:
        self.max_per_group = max_per_group
        self._ids: dict[str, OrderedDict[UUID, None]] = {}

    async def seen(self, group: str, event_id: UUID) -> bool:
        return event_id in self._ids.get(group, ())

    async def record(self, group: str, event_id: UUID) -> None:
        ids = self._ids.setdefault(group, OrderedDict())
        ids[event_id] = None
        ids.move_to_end(event_id)
        while len(ids) > self.max_per_group:
            ids.popitem(last=False)


def idempotent(handler: Handler, store: ProcessedStore, group: str) -> Handler:
    """Wrap `handler` so an event id already processed by `group` is skipped.

    The id is recorded only after the handler returned, so a failed attempt is retried.
    """

    async def handle_once(event: Event) -> None:
        if await store.seen(group, event.id):
            return
        await handler(event)
        await store.record(group, event.id)

    return handle_once
