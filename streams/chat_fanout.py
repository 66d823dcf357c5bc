"""This instance's reader of `chat.events`: every event reaches every instance's sockets.

A broadcast (`streams/broadcast.py`) from the latest offset: a socket that missed something
recovers it from the database with `since_seq`, so an instance never needs events from before it
started.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from streams.base import Streams
from streams.broadcast import Broadcast
from streams.envelope import Event
from streams.topics import CHAT_EVENTS

log = logging.getLogger("mitra.streams.chat_fanout")

Listener = Callable[[Event], None]


class ChatFanout(Broadcast):
    """Hands each `chat.events` event to the listeners (the socket hub, the router's acks)."""

    topic = CHAT_EVENTS.name
    group_prefix = "chat-fanout"

    def __init__(self, streams: Streams, instance_id: str, listeners: list[Listener]) -> None:
        super().__init__(streams, instance_id)
        self._listeners = listeners

    async def _handle(self, event: Event) -> None:
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                # One bad listener must not cost the others their events.
                log.exception("chat.events listener failed on %s", event.type)
