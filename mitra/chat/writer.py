"""Group commit for chat: messages from every conversation are written in shared transactions.

A row per transaction caps throughput at the database's commit rate; batching whatever queued
while the previous commit ran keeps latency low when idle and throughput high under load. Each
message's `chat.events` and `analytics.events` outbox rows commit in the same transaction, as
two Core `executemany` statements beside the messages' own: three statements and one commit per
batch, whatever its size.

After the commit the committed messages go to the `on_committed` listener (this instance's
sockets) in seq order per conversation, and then the acks resolve: no local socket waits for the
outbox. The outbox still carries every message to the other instances.

One bad message fails alone. A batch the database refuses is split, by conversation and then
within the conversation, until the refused message is found: it is rejected with
`MessageRefused` (sending it again cannot help), the messages before it commit, the ones after it
in the same conversation are rejected with `WriteRejected` (resend) because their seqs would
leave a gap, and every other conversation's messages commit.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.exc import DBAPIError, IntegrityError, StatementError

from mitra.chat.conversations import StoredMessage, stored
from mitra.db import BulkInsert, Database, Scope, db_purpose, utcnow
from mitra.errors import InvalidInput, Unavailable
from mitra.ids import new_ids
from mitra.models import Message, OutboxEvent
from mitra.records import ANALYTICS_TOPIC, CHAT_EVENTS_TOPIC, WHATSAPP_OUTBOUND_TOPIC

log = logging.getLogger("mitra.chat.writer")

_MESSAGES: Table = Message.__table__  # type: ignore[assignment]
_OUTBOX: Table = OutboxEvent.__table__  # type: ignore[assignment]
INSERT_MESSAGES = BulkInsert(
    _MESSAGES,
    (
        "id",
        "tenant_id",
        "conversation_id",
        "seq",
        "sender_id",
        "client_msg_id",
        "body",
        "channel",
        "sent_at",
        "sender_type",
        "external_id",
        "meta",
        "created_at",
        "updated_at",
    ),
)
INSERT_OUTBOX = BulkInsert(
    _OUTBOX,
    (
        "event_id",
        "tenant_id",
        "topic",
        "key",
        "event_type",
        "payload",
        "occurred_at",
        "published_at",
        "created_at",
        "updated_at",
    ),
)
# SQLSTATE classes of a statement the database refuses for its data (22: data exception, such
# as a NUL character or a value too long; 23: integrity), as opposed to a lost connection.
_REFUSAL_CLASSES = ("22", "23")


class WriteRejected(Unavailable):
    """The message was not stored; the client resends it with the same `client_msg_id`."""

    code = "not_stored"
    default_message = "the message was not stored; send it again"


class MessageRefused(InvalidInput):
    """The database refused this message itself; sending it again gets the same answer."""

    code = "message_refused"
    default_message = "the message cannot be stored as it is; change it before sending again"


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


Batch = list[PendingMessage]


class MessageWriter:
    """Writes queued messages in batches from one task on the event loop.

    `submit` may be called from any thread (conversation actors run on their own); items reach
    the loop in call order, so one actor's messages are written in seq order. Submissions made
    while the loop is busy share one wake-up instead of one cross-thread call each.
    """

    def __init__(
        self,
        database: Database,
        *,
        max_batch: int = 500,
        after_commit: Callable[[], None] | None = None,
        on_committed: Callable[[list[StoredMessage]], None] | None = None,
    ) -> None:
        self._db = database
        self._max_batch = max_batch
        self._after_commit = after_commit
        self._on_committed = on_committed
        self._queue: deque[PendingMessage] = deque()
        self._inbox: list[PendingMessage] = []
        self._inbox_lock = threading.Lock()
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
        self._take_inbox()
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
        with self._inbox_lock:
            self._inbox.append(message)
            first = len(self._inbox) == 1
        if first:
            try:
                loop.call_soon_threadsafe(self._take_inbox)
            except RuntimeError:  # the loop closed in between
                self._take_inbox()
        return message.done

    def _take_inbox(self) -> None:
        with self._inbox_lock:
            taken, self._inbox = self._inbox, []
        if self._task is None or self._closing:
            for message in taken:
                _reject(message, "the message writer is stopping")
            return
        self._queue.extend(taken)
        if taken:
            self._wakeup.set()

    async def _run(self) -> None:
        with db_purpose("chat.write"):
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                while self._queue:
                    count = min(self._max_batch, len(self._queue))
                    batch = [self._queue.popleft() for _ in range(count)]
                    try:
                        await self._write(batch)
                    except Exception:
                        log.exception("chat batch failed unexpectedly")
                        self._reject_all(batch, "the message could not be stored")
                if self._closing:
                    return

    async def _write(self, batch: Batch) -> None:
        live = []
        for message in batch:
            if self._stale(message):
                _reject(message, "the conversation was reset; send again")
            else:
                live.append(message)
        if live:
            await self._write_groups(_by_conversation(live))

    async def _write_groups(self, groups: list[Batch]) -> None:
        """Commit these conversations' messages together; split them if that is refused."""
        if len(groups) == 1:
            await self._write_conversation(groups[0])
            return
        messages = [message for group in groups for message in group]
        try:
            await self._insert(messages)
        except Exception as exc:
            if not _refused(exc):
                log.warning("chat batch of %d failed: %r", len(messages), exc)
                self._reject_all(messages, "the message could not be stored")
                return
            half = len(groups) // 2
            await self._write_groups(groups[:half])
            await self._write_groups(groups[half:])
            return
        self._committed(messages)

    async def _write_conversation(self, group: Batch) -> bool:
        """Commit one conversation's messages (in seq order); True if all of them were."""
        try:
            await self._insert(group)
        except IntegrityError:
            # Its seq or client id is taken: a retry reached the database twice, or another
            # instance wrote this conversation.
            await self._settle_conflict(group)
            return False
        except Exception as exc:
            if not _refused(exc):
                log.warning("chat write for %s failed: %r", group[0].conversation_id, exc)
                self._reject_all(group, "the message could not be stored")
                return False
            if len(group) == 1:
                self._refuse(group[0], exc)
                return False
            half = len(group) // 2
            if not await self._write_conversation(group[:half]):
                # The later ones would leave a gap in the seqs: they are sent again.
                self._reject_all(group[half:], "an earlier message was not stored; send again")
                return False
            return await self._write_conversation(group[half:])
        self._committed(group)
        return True

    def _refuse(self, message: PendingMessage, exc: Exception) -> None:
        log.warning(
            "conversation %s: the database refused message seq %d (%s)",
            message.conversation_id,
            message.stored.seq,
            type(exc).__name__,
        )
        if not message.done.done():
            message.done.set_exception(MessageRefused())
        # Its seq is free again: the actor reloads from what is stored.
        self._reject_all([message], "refused")

    async def _settle_conflict(self, group: Batch) -> None:
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

    async def _insert(self, batch: Batch) -> None:
        now = utcnow()
        # One executemany per table: the ORM's bulk insert costs more than the database.
        await self._db.batch_committer.commit(
            [
                (INSERT_MESSAGES, [_message_row(m, now) for m in batch]),
                (INSERT_OUTBOX, _outbox_rows(batch, now)),
            ]
        )

    def _committed(self, batch: Batch) -> None:
        self.batches += 1
        self.written += len(batch)
        if self._on_committed is not None:
            try:
                self._on_committed([message.stored for message in batch])
            except Exception:
                # Local delivery is a shortcut: the outbox still carries every message.
                log.exception("the on-commit listener failed")
        for message in batch:
            _resolve(message.done, message.stored)
        if self._after_commit is not None:
            self._after_commit()


def _refused(exc: BaseException) -> bool:
    """Whether the database refused the statement for its data (so splitting the batch finds
    the culprit), rather than failing as a whole (a lost connection, a timeout)."""
    if isinstance(exc, IntegrityError):
        return True
    if isinstance(exc, DBAPIError):
        state = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
        return isinstance(state, str) and state[:2] in _REFUSAL_CLASSES
    # A value no bind processor would take fails before it reaches the database.
    return isinstance(exc, StatementError)


def _resolve(
    future: concurrent.futures.Future[StoredMessage], stored_message: StoredMessage
) -> None:
    # A future nobody waits for any more may have been cancelled; the row is stored anyway.
    if not future.done():
        future.set_result(stored_message)


def _reject(message: PendingMessage, reason: str) -> None:
    if not message.done.done():
        message.done.set_exception(WriteRejected(reason))


def _to_whatsapp(message: PendingMessage) -> bool:
    # A member's message on the WhatsApp channel leaves through `whatsapp.outbound`, committed
    # with the message: it is sent if and only if it is stored.
    return message.stored.channel == "whatsapp" and message.direction == "outbound"


def _by_conversation(batch: Batch) -> list[Batch]:
    groups: dict[uuid.UUID, Batch] = {}
    for message in batch:
        groups.setdefault(message.conversation_id, []).append(message)
    return list(groups.values())


def _message_row(message: PendingMessage, now: datetime) -> tuple[Any, ...]:
    item = message.stored
    return (
        item.message_id,
        message.tenant_id,
        item.conversation_id,
        item.seq,
        item.sender_id,
        item.client_msg_id,
        item.body,
        item.channel,
        item.sent_at,
        item.sender_type,
        item.external_id,
        item.meta,
        now,
        now,
    )


def _outbox_rows(batch: Batch, now: datetime) -> list[tuple[Any, ...]]:
    rows = []
    to_whatsapp = [m for m in batch if _to_whatsapp(m)]
    event_ids = iter(new_ids(2 * len(batch) + len(to_whatsapp)))
    for message in to_whatsapp:
        item = message.stored
        conversation = str(item.conversation_id)
        rows.append(
            (next(event_ids), message.tenant_id, WHATSAPP_OUTBOUND_TOPIC, conversation,
             "whatsapp.send", item.as_payload(), item.sent_at, None, now, now)
        )  # fmt: skip
    for message in batch:
        item = message.stored
        tenant_id = message.tenant_id
        conversation = str(item.conversation_id)
        agent = item.sender_id if message.direction == "outbound" else None
        fact = {
            "conversation_id": conversation,
            "agent_id": str(agent) if agent else None,
            "channel": item.channel,
            "direction": message.direction,
        }
        sent_at = item.sent_at
        rows.append(
            (next(event_ids), tenant_id, CHAT_EVENTS_TOPIC, conversation, "message.accepted",
             item.as_payload(), sent_at, None, now, now)
        )  # fmt: skip
        rows.append(
            (next(event_ids), tenant_id, ANALYTICS_TOPIC, str(tenant_id), "message.sent", fact,
             sent_at, None, now, now)
        )  # fmt: skip
    return rows
