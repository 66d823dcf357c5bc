"""Frames for a user's sockets on every instance: import progress, escalations, mode changes.

A conversation's frames travel by its room; these are addressed to people, wherever their
sockets are. They go through `chat.events`, which every instance reads from the latest offset,
and each instance's hub pushes them to the sockets of those users it holds. Best effort by
design: a socket that was offline misses them, so whatever a user must not miss is also stored
(an import's status, a callback request) and read over REST.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from typing import Any

from handlers.chat_hub import USER_FRAME_EVENT
from streams.base import Streams
from streams.envelope import Event
from streams.topics import CHAT_EVENTS

MAX_USERS_PER_FRAME = 1000
"""A frame for a whole agency is a broadcast, not this; the bound keeps one event small."""


class UserFrames:
    def __init__(self, streams: Streams) -> None:
        self._streams = streams

    async def send(
        self, tenant_id: uuid.UUID, user_ids: Collection[uuid.UUID], frame: dict[str, Any]
    ) -> None:
        """Push `frame` (a dict with a "type") to every open socket of `user_ids`."""
        if "type" not in frame:
            raise ValueError("a frame needs a type")
        users = sorted({str(user_id) for user_id in user_ids})
        if not users:
            return
        if len(users) > MAX_USERS_PER_FRAME:
            raise ValueError(f"at most {MAX_USERS_PER_FRAME} users per frame")
        event = Event(
            type=USER_FRAME_EVENT,
            tenant_id=str(tenant_id),
            key=users[0],
            payload={"user_ids": users, "frame": frame},
        )
        await self._streams.publish(CHAT_EVENTS.name, users[0], event)
