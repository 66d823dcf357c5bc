"""Group commit for chat: messages from every conversation are written in shared transactions.

A row per transaction caps throughput at the database's commit rate; batching whatever queued
while the previous commit ran keeps latency low when idle and throughput high under load. Each
message's `chat.events` and `analytics.events` outbox rows commit in the same transaction.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from mitra.chat.conversations import StoredMessage, stored
from mitra.db import Database, Scope, db_purpose, utcnow
from mitra.errors import Unavailable
from mitra.models import Message, OutboxEvent
from mitra.records import ANALYTICS_TOPIC

log = logging.getLogger("mitra.chat.writer")

CHAT_EVENTS_TOPIC = "chat.events"


class WriteRejected(Unavailable):
    """The message was not stored; the client resends it with the same `client_msg_id`."""

    code = "not_stored"
    default_message = "the message was not stored; send it again"


@dataclass(eq=False)
class PendingMessage:
    """A message a conversation actor numbered, on its way to the database.

    `generation` is the actor's count of resets: after a failed write the actor reloads its
    last seq and bumps the generation, and the writer drops what the old generation queued, so
    a conversation never gets a gap or a duplicate seq.
    """

    tenant_id: uuid.UUID
    stored: StoredMessage
    direction: str
    generation: int
    on_rejected: Callable[[int], None] | None = None
    done: concurrent.futures.Future[StoredMessage] = field(
        default_factory=concurrent.futures.Future
    )

    @property
    def conversation_id(self) -> uuid.UUID:
        return self.stored.conversation_id


class MessageWriter:
    """Writes queued messages in batches from one task on the event loop.

    `submit` may be called from any thread (conversation actors run on their own); items are
    handed to the loop in call order, so one actor's messages are written in seq order.
    """

    def __init__(
        self,
        database: Database,
        *,
        max_batch: int = 500,
        after_commit: Callable[[], None] | None = None,
    ) -> None:
        self._db = database
        self._max_batch = max_batch
        self._after_commit = after_commit
        self._queue: deque[PendingMessage] = deque()
        self._wakeup = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._rejected_generation: dict[uuid.UUID, int] = {}
        self._closing = False
        self.batches = 0
        self.written = 0

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self._run(), name="chat-message-writer")

    async def stop(self) -> None:
        """Write what is queued, then stop."""
        if self._task is None:
            return
        self._closing = True
        self._wakeup.set()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    def submit(self, message: PendingMessage) -> concurrent.futures.Future[StoredMessage]:
        """Queue `message` (from any thread); the future resolves once it is committed."""
        loop = self._loop
        if loop is None or loop.is_closed():
            message.done.set_exception(WriteRejected("the message writer is not running"))
            return message.done
        loop.call_soon_threadsafe(self._enqueue, message)
        return message.done

    def _enqueue(self, message: PendingMessage) -> None:
        if self._task is None:
            _reject(message, "the message writer is stopping")
            return
        self._queue.append(message)
        self._wakeup.set()

    async def _run(self) -> None:
        with db_purpose("chat.write"):
            await self._write_forever()

    async def _write_forever(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                batch = [
                    self._queue.popleft() for _ in range(min(self._max_batch, len(self._queue)))
                ]
                try:
                    await self._write(batch)
                except Exception:
                    log.exception("chat batch failed unexpectedly")
                    self._reject_all(batch, "the message could not be stored")
            if self._closing:
                return

    async def _write(self, batch: list[PendingMessage]) -> None:
        live = [m for m in batch if not self._stale(m)]
        for message in batch:
            if self._stale(message):
                _reject(message, "the conversation was reset; send again")
        if not live:
            return
        try:
            await self._insert(live)
        except IntegrityError:
            # One conversation's conflict must not fail the others: retry them one by one.
            for group in _by_conversation(live):
                await self._write_alone(group)
            return
        except Exception:
            log.exception("chat batch of %d failed; rejecting it", len(live))
            self._reject_all(live, "the message could not be stored")
            return
        self._committed(live)

    async def _write_alone(self, group: list[PendingMessage]) -> None:
        try:
            await self._insert(group)
        except IntegrityError:
            await self._settle_conflict(group)
        except Exception:
            log.exception("chat write failed for conversation %s", group[0].conversation_id)
            self._reject_all(group, "the message could not be stored")
        else:
            self._committed(group)

    async def _settle_conflict(self, group: list[PendingMessage]) -> None:
        """A retry that reached the database twice gets its first acceptance; the rest of the
        conversation's queue is rejected and its actor resets from what is stored."""
        first = group[0]
        async with self._db.session(Scope.tenant(first.tenant_id)) as session:
            rows = await session.execute(
                select(Message).where(
                    Message.conversation_id == first.conversation_id,
                    Message.client_msg_id.in_([m.stored.client_msg_id for m in group]),
                )
            )
            existing = {(row.sender_id, row.client_msg_id): stored(row) for row in rows.scalars()}
        for message in group:
            found = existing.get((message.stored.sender_id, message.stored.client_msg_id))
            if found is not None:
                _resolve(message.done, found)
        # Even when every one was a duplicate, the seqs the actor gave them are burnt: reset it.
        self._reject_all(group, "conflict; send again")

    def _reject_all(self, messages: Iterable[PendingMessage], reason: str) -> None:
        messages = list(messages)
        for message in messages:
            if not message.done.done():
                _reject(message, reason)
        # Tell each conversation's actor once, with the newest generation it used.
        newest: dict[uuid.UUID, PendingMessage] = {}
        for message in messages:
            current = newest.get(message.conversation_id)
            if current is None or message.generation > current.generation:
                newest[message.conversation_id] = message
        for conversation_id, message in newest.items():
            previous = self._rejected_generation.get(conversation_id, -1)
            self._rejected_generation[conversation_id] = max(previous, message.generation)
            if message.on_rejected is not None:
                message.on_rejected(message.generation)

    def _stale(self, message: PendingMessage) -> bool:
        return message.generation <= self._rejected_generation.get(message.conversation_id, -1)

    async def _insert(self, batch: list[PendingMessage]) -> None:
        now = utcnow()
        async with self._db.transaction(Scope.system()) as session:
            await session.execute(insert(Message), [_message_row(m, now) for m in batch])
            await session.execute(insert(OutboxEvent), _outbox_rows(batch, now))

    def _committed(self, batch: list[PendingMessage]) -> None:
        self.batches += 1
        self.written += len(batch)
        for message in batch:
            _resolve(message.done, message.stored)
        if self._after_commit is not None:
            self._after_commit()


def _resolve(
    future: concurrent.futures.Future[StoredMessage], stored_message: StoredMessage
) -> None:
    # A future nobody waits for any more may have been cancelled; the row is stored anyway.
    if not future.done():
        future.set_result(stored_message)


def _reject(message: PendingMessage, reason: str) -> None:
    if not message.done.done():
        message.done.set_exception(WriteRejected(reason))


def _by_conversation(batch: list[PendingMessage]) -> list[list[PendingMessage]]:
    groups: dict[uuid.UUID, list[PendingMessage]] = {}
    for message in batch:
        groups.setdefault(message.conversation_id, []).append(message)
    return list(groups.values())


def _message_row(message: PendingMessage, now: datetime) -> dict[str, Any]:
    return {
        "id": message.stored.message_id,
        "tenant_id": message.tenant_id,
        "conversation_id": message.conversation_id,
        "seq": message.stored.seq,
        "sender_id": message.stored.sender_id,
        "client_msg_id": message.stored.client_msg_id,
        "body": message.stored.body,
        "channel": message.stored.channel,
        "sent_at": message.stored.sent_at,
        "created_at": now,
        "updated_at": now,
    }


def _outbox_rows(batch: list[PendingMessage], now: datetime) -> list[dict[str, Any]]:
    rows = []
    for message in batch:
        common = {"tenant_id": message.tenant_id, "occurred_at": message.stored.sent_at}
        common |= {"created_at": now, "updated_at": now, "published_at": None}
        rows.append(
            {
                **common,
                "event_id": uuid.uuid4(),
                "topic": CHAT_EVENTS_TOPIC,
                "key": str(message.conversation_id),
                "event_type": "message.accepted",
                "payload": message.stored.as_payload(),
            }
        )
        rows.append(
            {
                **common,
                "event_id": uuid.uuid4(),
                "topic": ANALYTICS_TOPIC,
                "key": str(message.tenant_id),
                "event_type": "message.sent",
                "payload": {
                    "conversation_id": str(message.conversation_id),
                    "agent_id": str(message.stored.sender_id)
                    if message.direction == "outbound" and message.stored.sender_id
                    else None,
                    "channel": message.stored.channel,
                    "direction": message.direction,
                },
            }
        )
    return rows
