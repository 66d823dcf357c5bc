"""Delivering one record to a handler: decode, retry with backoff, dead-letter (both backends)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from streams.base import Handler, RetryPolicy
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
