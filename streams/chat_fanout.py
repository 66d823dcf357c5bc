"""This instance's reader of `chat.events`: every event reaches every instance's sockets.

Each instance consumes the whole topic in a consumer group of its own (a broadcast), from the
latest offset: a socket that missed something recovers it from the database with `since_seq`,
so an instance never needs events from before it started.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from streams.base import RetryPolicy, Streams, Subscription
from streams.envelope import Event
from streams.topics import CHAT_EVENTS

log = logging.getLogger("mitra.streams.chat_fanout")

Listener = Callable[[Event], None]


class ChatFanout:
    """Hands each `chat.events` event to the listeners (the socket hub, the router's acks)."""

    def __init__(self, streams: Streams, instance_id: str, listeners: list[Listener]) -> None:
        self._streams = streams
        self.group = f"chat-fanout-{instance_id}"
        self._listeners = listeners
        self._subscription: Subscription | None = None

    async def start(self) -> None:
        self._subscription = await self._streams.subscribe(
            [CHAT_EVENTS.name],
            self.group,
            self._handle,
            # Delivery is best effort past a retry: recovery by since_seq covers the rest.
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
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                # One bad listener must not cost the others their events.
                log.exception("chat.events listener failed on %s", event.type)
