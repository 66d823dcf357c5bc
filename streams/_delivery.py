"""Delivering records to a handler: decode, retry with backoff, dead-letter (both backends).

`Deliverer` hands a handler one event at a time; `BatchDeliverer` hands a batch handler every
event delivered together, and falls back to one at a time for a batch it gives up on.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from streams.base import BatchHandler, Handler, RetryPolicy
from streams.envelope import Event
from streams.errors import EnvelopeError
from streams.metrics import StreamsMetrics
from streams.topics import (
    DEAD_LETTER_EVENT_TYPE,
    DeadLetter,
    DeadLetterError,
    dead_letter_topic,
)

log = logging.getLogger(__name__)

Publish = Callable[[str, str, Event], Awaitable[None]]


@dataclass(frozen=True)
class Record:
    """One record as read from a partition, before decoding."""

    topic: str
    partition: int
    offset: int
    key: str | None
    value: bytes | None


Done = Callable[[Record], None]
"""Told about each record, in order, once it may be committed."""


class Deliverer:
    """Hands records to a group's handler and decides what happens when it fails.

    `deliver` returns when the record may be committed: handled, or dead-lettered. It raises
    only if dead-lettering itself failed (or on cancellation): then the record must not be
    committed, and the backend lets the group redeliver it.
    """

    def __init__(
        self,
        group: str,
        handler: Handler,
        retry: RetryPolicy,
        publish: Publish,
        metrics: StreamsMetrics,
    ) -> None:
        self.group = group
        self.handler = handler
        self.retry = retry
        self.publish = publish
        self.metrics = metrics
        self.dead_letter_topic = dead_letter_topic(group).name

    async def deliver_all(self, records: Sequence[Record], done: Done) -> None:
        """Deliver `records` one after another, each reported done as soon as it is."""
        for record in records:
            await self.deliver(record)
            done(record)

    async def deliver(self, record: Record) -> None:
        try:
            event = Event.decode(record.value)
        except EnvelopeError as exc:
            # A poison record cannot get better by retrying; park it at once.
            await self._dead_letter(record, None, exc, attempts=0)
            self.metrics.record_consumed(record.topic, self.group)
            return
        attempt = 0
        while True:
            attempt += 1
            try:
                await self.handler(event)
            except Exception as exc:
                if attempt >= self.retry.max_attempts or not self.retry.retryable(exc):
                    await self._dead_letter(record, event, exc, attempts=attempt)
                    break
                self.metrics.record_retry(record.topic, self.group)
                delay = self.retry.delay(attempt)
                log.warning(
                    "handler failed; retrying",
                    extra={
                        "group": self.group,
                        "topic": record.topic,
                        "partition": record.partition,
                        "offset": record.offset,
                        "event_id": str(event.id),
                        "attempt": attempt,
                        "delay": delay,
                        "error": repr(exc),
                    },
                )
                await asyncio.sleep(delay)
            else:
                break
        self.metrics.record_consumed(record.topic, self.group)

    async def _dead_letter(
        self, record: Record, event: Event | None, exc: Exception, *, attempts: int
    ) -> None:
        letter = DeadLetter(
            group=self.group,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            error=DeadLetterError(type=type(exc).__name__, message=str(exc), attempts=attempts),
            original=event.model_dump(mode="json") if event else None,
            raw=None if event or record.value is None else record.value.decode("utf-8", "replace"),
        )
        key = event.key if event else (record.key or "")
        wrapper = Event(
            type=DEAD_LETTER_EVENT_TYPE,
            tenant_id=event.tenant_id if event else "",
            key=key,
            payload=letter.model_dump(mode="json"),
        )
        log.error(
            "dead-lettering event",
            extra={
                "group": self.group,
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "attempts": attempts,
                "error": repr(exc),
            },
        )
        await self.publish(self.dead_letter_topic, key, wrapper)
        self.metrics.record_dead_letter(record.topic, self.group)


class BatchDeliverer:
    """Hands the events of a delivered batch to a batch handler in one call.

    A batch that keeps failing, or fails with an error the policy gives up on at once, is not
    dead-lettered as a whole: its events go through a `Deliverer` one at a time instead, so
    only the event that really fails is retried and parked, and its neighbours are applied.
    Undecodable records never reach the handler; they are dead-lettered first.
    """

    def __init__(
        self,
        group: str,
        handler: BatchHandler,
        retry: RetryPolicy,
        publish: Publish,
        metrics: StreamsMetrics,
    ) -> None:
        self.group = group
        self.handler = handler
        self.retry = retry
        self.metrics = metrics
        self.single = Deliverer(group, self._one, retry, publish, metrics)

    async def _one(self, event: Event) -> None:
        await self.handler([event])

    async def deliver_all(self, records: Sequence[Record], done: Done) -> None:
        """Deliver `records` in one handler call; all are reported done after it returned."""
        batch: list[tuple[Record, Event]] = []
        for record in records:
            try:
                batch.append((record, Event.decode(record.value)))
            except EnvelopeError:
                await self.single.deliver(record)  # dead-letters it, never calls the handler
        if len(batch) == 1:
            await self.single.deliver(batch[0][0])
        elif batch and not await self._batch([event for _, event in batch], batch[0][0]):
            for record, _ in batch:
                await self.single.deliver(record)
        else:
            consumed = Counter(record.topic for record, _ in batch)
            for topic, count in consumed.items():
                self.metrics.record_consumed(topic, self.group, count)
        # Only now: the backend may commit these offsets as soon as it hears of them.
        for record in records:
            done(record)

    async def _batch(self, events: list[Event], first: Record) -> bool:
        """Try the batch under the retry policy; False once it is given up on."""
        attempt = 0
        while True:
            attempt += 1
            try:
                await self.handler(events)
            except Exception as exc:
                extra = {
                    "group": self.group,
                    "topic": first.topic,
                    "partition": first.partition,
                    "offset": first.offset,
                    "events": len(events),
                    "attempt": attempt,
                    "error": repr(exc),
                }
                if attempt >= self.retry.max_attempts or not self.retry.retryable(exc):
                    log.warning("batch handler failed; delivering one event at a time", extra=extra)
                    return False
                self.metrics.record_retry(first.topic, self.group)
                delay = self.retry.delay(attempt)
                log.warning("batch handler failed; retrying", extra={**extra, "delay": delay})
                await asyncio.sleep(delay)
            else:
                return True
