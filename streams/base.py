"""The one `Streams` interface both backends implement, and the retry policy consumers use."""

from __future__ import annotations

import asyncio
import random
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field

from streams.envelope import Event
from streams.metrics import StreamsMetrics
from streams.topics import TopicSpec

Handler = Callable[[Event], Awaitable[None]]
"""A consumer's handler: returning means done (the offset is committed); raising means retry."""

BatchHandler = Callable[[Sequence[Event]], Awaitable[None]]
"""A batch consumer's handler: it gets the events delivered together; returning means all of
them are done (their offsets are committed), raising means the whole batch is retried. It must
therefore apply a batch all or nothing (one transaction)."""

PublishItem = tuple[str, str, bytes]
"""One record of `Streams.publish_batch`: (topic, key, value), the value an encoded `Event`."""

DEFAULT_MAX_BATCH = 500
"""Events a batch handler gets at most in one call (Kafka's `max_poll_records` default)."""


@dataclass(frozen=True)
class RetryPolicy:
    """How often a failing handler is tried before its event goes to the dead-letter topic.

    `max_attempts` counts every try, the first included. The delay before try n+1 is
    `initial_backoff * multiplier**(n-1)`, capped at `max_backoff`, with +/- `jitter` (a
    fraction) so that many consumers failing together do not retry in lock-step. Exceptions
    of a type in `give_up_on` (e.g. invalid input) are dead-lettered at once.
    """

    max_attempts: int = 5
    initial_backoff: float = 0.1
    max_backoff: float = 10.0
    multiplier: float = 2.0
    jitter: float = 0.1
    give_up_on: tuple[type[Exception], ...] = field(default=())

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.initial_backoff < 0 or self.max_backoff < 0 or self.multiplier < 1:
            raise ValueError("backoffs must be >= 0 and the multiplier >= 1")

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        base = min(self.max_backoff, self.initial_backoff * self.multiplier ** (attempt - 1))
        spread = base * self.jitter
        # Jitter is not security-sensitive; it only de-synchronises retries.
        return max(0.0, base + random.uniform(-spread, spread))  # noqa: S311

    def retryable(self, exc: Exception) -> bool:
        return not isinstance(exc, self.give_up_on)


DEFAULT_RETRY = RetryPolicy()
"""Five attempts over about 1.5 s, then the dead-letter topic."""


class Subscription(ABC):
    """A member of a consumer group, consuming some topics with one handler.

    Its partitions may change while it runs (other members join or leave). `stop()` leaves the
    group: events handled so far stay committed, an event whose handler is still running is
    abandoned and will be redelivered to the group.
    """

    group: str
    topics: tuple[str, ...]

    @abstractmethod
    def assignment(self) -> frozenset[tuple[str, int]]:
        """The (topic, partition) pairs this member owns right now."""

    @abstractmethod
    async def wait_assigned(self) -> frozenset[tuple[str, int]]:
        """Wait until this member owns at least one partition (bound it with asyncio.timeout)."""

    @property
    @abstractmethod
    def running(self) -> bool:
        """False once stopped (or failed beyond repair)."""

    @abstractmethod
    async def stop(self) -> None:
        """Leave the group; idempotent."""


class Streams(ABC):
    """Publish events to topics and consume them in consumer groups, at least once.

    Guarantees both backends keep: events with the same key land in the same partition and a
    group handles one partition's events one after another; an offset is committed only after
    the handler returned; a handler that keeps failing is retried with exponential backoff, then
    its event is published to `dlq.<group>` with the error attached, committed, and skipped.
    """

    metrics: StreamsMetrics

    @abstractmethod
    async def start(self) -> None:
        """Start the backend; never raises because a broker is down (see `health`)."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop every subscription, then the backend; idempotent."""

    @abstractmethod
    async def publish(self, topic: str, key: str, event: Event) -> None:
        """Publish `event` to `topic`, partitioned by `key`; return once the broker has it.

        Raises `StreamsUnavailable` when the broker cannot be reached in time.
        """

    @abstractmethod
    async def publish_batch(self, items: Sequence[PublishItem]) -> None:
        """Publish every (topic, key, value) record; return once the broker has all of them.

        Records with the same topic and key are appended to their partition in the order given,
        many to a request. Raises `BatchPublishFailed` naming the records that were not
        acknowledged (the others were), or `StreamsUnavailable` when nothing could be sent. On
        Kafka a partition's later records can be accepted after an earlier one failed (a batch
        that expired, a record too large), so a caller that needs a key's order re-publishes
        that key from its first failed record.
        """

    @abstractmethod
    async def subscribe(
        self,
        topics: Sequence[str],
        group: str,
        handler: Handler,
        *,
        retry: RetryPolicy = DEFAULT_RETRY,
        offset_reset: str = "earliest",
    ) -> Subscription:
        """Join `group` for `topics`; `offset_reset` ("earliest" or "latest") applies only to
        partitions the group has never committed."""

    @abstractmethod
    async def subscribe_batch(
        self,
        topics: Sequence[str],
        group: str,
        handler: BatchHandler,
        *,
        retry: RetryPolicy = DEFAULT_RETRY,
        offset_reset: str = "earliest",
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> Subscription:
        """Join `group` for `topics` with a handler that gets what was delivered together.

        A batch holds up to `max_batch` events of one or more partitions, each partition's in
        order; offsets are committed after the handler returned. A failing batch is retried as
        a whole with `retry`; when it is given up on, its events are delivered one at a time
        (each retried, then dead-lettered alone), so one bad event never parks the others.
        """

    @abstractmethod
    async def ensure_topics(self, specs: Iterable[TopicSpec]) -> None:
        """Create the topics that do not exist yet (existing ones are left alone)."""

    @abstractmethod
    async def health(self) -> tuple[bool, str]:
        """(ok, detail) for the readiness probe; never raises."""


async def sleep_or_stop(stopping: asyncio.Event, seconds: float) -> bool:
    """Sleep, but wake early when `stopping` is set; True if stopping."""
    try:
        await asyncio.wait_for(stopping.wait(), seconds)
    except TimeoutError:
        return False
    return True
