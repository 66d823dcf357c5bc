"""A topic every instance reads whole: the base of the chat fan-out and the revocation reader.

Each instance consumes the topic in a consumer group of its own, so every instance gets every
event, from the latest offset: what an instance missed before it started it recovers by other
means (sockets by since_seq, the session cache by starting empty). Delivery is best effort past
one retry: a broadcast must not stall behind an event it cannot handle.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from streams.base import RetryPolicy, Streams, Subscription
from streams.envelope import Event

BROADCAST_RETRY = RetryPolicy(max_attempts=2, initial_backoff=0.01)


class Broadcast(ABC):
    """This instance's reader of `topic`, in the consumer group `<group_prefix>-<instance>`."""

    topic: str
    group_prefix: str

    def __init__(self, streams: Streams, instance_id: str) -> None:
        self._streams = streams
        self.group = f"{self.group_prefix}-{instance_id}"
        self._subscription: Subscription | None = None

    async def start(self) -> None:
        self._subscription = await self._streams.subscribe(
            [self.topic], self.group, self._handle, retry=BROADCAST_RETRY, offset_reset="latest"
        )

    async def stop(self) -> None:
        if self._subscription is not None:
            await self._subscription.stop()

    @property
    def subscription(self) -> Subscription | None:
        return self._subscription

    @abstractmethod
    async def _handle(self, event: Event) -> None: ...
