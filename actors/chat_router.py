"""Routes each message to the instance that owns its conversation.

Ownership follows the consumer group on `chat.commands`: the instance assigned a partition
runs the actors of the conversations keyed to it. A message arriving elsewhere is published to
`chat.commands`; the owner accepts it and answers on `chat.events` with a `message.acked` (or
`message.rejected`) event that the origin instance is waiting for. When partitions move, the
old owner passivates its actors for them; the database's unique seq is the last line of defence
if two instances ever overlap.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid
from typing import Any

from aioprometheus.collectors import Counter, Registry

from actors.chat import ChatActors
from actors.conversation import SendMessage
from mitra.chat import MessageRefused, StoredMessage, WriteRejected
from mitra.chat.membership import MEMBERS_CHANGED
from mitra.errors import ActorTimeout, MitraError, NotFound, Unavailable
from mitra.whatsapp.window import OutsideWindow
from streams.base import RetryPolicy, Streams, Subscription
from streams.envelope import Event
from streams.murmur2 import partition_for
from streams.topics import CHAT_COMMANDS, CHAT_EVENTS

log = logging.getLogger("mitra.actors.chat_router")

SEND_COMMAND = "chat.send"
ACKED = "message.acked"
REJECTED = "message.rejected"
OWNERS_GROUP = "chat-owners"

_Waiting = tuple[uuid.UUID, uuid.UUID | None, str]


class ChatRouter:
    """`send` a message wherever its conversation's actor lives."""

    def __init__(
        self,
        chat: ChatActors,
        streams: Streams,
        *,
        timeout: float,
        ownership_check_seconds: float = 1.0,
        registry: Registry | None = None,
    ) -> None:
        self.chat = chat
        self._streams = streams
        self._timeout = timeout
        self._check_every = ownership_check_seconds
        self._commands: Subscription | None = None
        self._waiting: dict[_Waiting, list[asyncio.Future[StoredMessage]]] = {}
        self._watcher: asyncio.Task[None] | None = None
        self.forwarded = Counter(
            "mitra_chat_forwarded_total",
            "messages sent through chat.commands to the instance owning the conversation",
            registry=registry or Registry(),
        )

    async def start(self) -> None:
        self._commands = await self._streams.subscribe(
            [CHAT_COMMANDS.name],
            OWNERS_GROUP,
            self._on_command,
            retry=RetryPolicy(max_attempts=3, initial_backoff=0.05),
        )
        self._watcher = asyncio.get_running_loop().create_task(
            self._passivate_what_moved(), name="chat-ownership-watch"
        )

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        if self._commands is not None:
            await self._commands.stop()
        for futures in self._waiting.values():
            for future in futures:
                if not future.done():
                    future.set_exception(Unavailable("the server is shutting down"))

    def owns(self, conversation_id: uuid.UUID) -> bool:
        if self._commands is None:
            return False
        return (CHAT_COMMANDS.name, _partition(conversation_id)) in self._commands.assignment()

    async def send(
        self, tenant_id: uuid.UUID, conversation_id: uuid.UUID, message: SendMessage
    ) -> StoredMessage:
        """Accept `message`; returns its ack once committed, on whichever instance owns it."""
        if self.owns(conversation_id):
            return await self.chat.send(tenant_id, conversation_id, message)
        self.forwarded.inc({})
        key = (conversation_id, message.sender_id, message.client_msg_id)
        future: asyncio.Future[StoredMessage] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append(future)
        try:
            await self._streams.publish(
                CHAT_COMMANDS.name,
                str(conversation_id),
                Event(
                    type=SEND_COMMAND,
                    tenant_id=str(tenant_id),
                    key=str(conversation_id),
                    payload={
                        "conversation_id": str(conversation_id),
                        "sender_id": str(message.sender_id) if message.sender_id else None,
                        "client_msg_id": message.client_msg_id,
                        "body": message.body,
                        "channel": message.channel,
                        "direction": message.direction,
                        "sender_type": message.sender_type,
                        "external_id": message.external_id,
                        "meta": message.meta,
                    },
                ),
            )
            async with asyncio.timeout(self._timeout):
                return await future
        except TimeoutError:
            raise ActorTimeout("the conversation's owner did not answer; send again") from None
        finally:
            futures = self._waiting.get(key, [])
            if future in futures:
                futures.remove(future)
            if not futures:
                self._waiting.pop(key, None)

    def on_event(self, event: Event) -> None:
        """A `chat.events` listener: resolves the sends this instance forwarded, and tells a
        conversation's live actor here that its members changed."""
        if event.type == MEMBERS_CHANGED:
            self.chat.members_changed(
                uuid.UUID(event.tenant_id), uuid.UUID(event.payload["conversation_id"])
            )
            return
        if event.type not in (ACKED, REJECTED):
            return
        payload = event.payload
        sender = payload.get("sender_id")
        key = (
            uuid.UUID(payload["conversation_id"]),
            uuid.UUID(sender) if sender else None,
            payload["client_msg_id"],
        )
        for future in self._waiting.get(key, []):
            if future.done():
                continue
            if event.type == ACKED:
                future.set_result(StoredMessage.from_payload(payload))
            else:
                future.set_exception(_rejection(payload))

    async def _on_command(self, event: Event) -> None:
        if event.type != SEND_COMMAND:
            return
        payload = event.payload
        tenant_id = uuid.UUID(event.tenant_id)
        conversation_id = uuid.UUID(payload["conversation_id"])
        sender = uuid.UUID(payload["sender_id"]) if payload.get("sender_id") else None
        message = SendMessage(
            sender,
            payload["client_msg_id"],
            payload["body"],
            payload.get("channel", "app"),
            payload.get("direction", "outbound"),
            payload.get("sender_type", "user"),
            payload.get("external_id"),
            payload.get("meta"),
        )
        try:
            stored = await self.chat.send(tenant_id, conversation_id, message)
        except MitraError as exc:
            if isinstance(exc, Unavailable):
                raise  # transient: the streams retry policy tries again
            await self._answer(event, REJECTED, {**_reply_key(payload), "code": exc.code,
                                                 "message": exc.message})  # fmt: skip
            return
        await self._answer(event, ACKED, stored.as_payload())

    async def _answer(self, command: Event, event_type: str, payload: dict[str, Any]) -> None:
        await self._streams.publish(
            CHAT_EVENTS.name,
            command.key,
            Event(type=event_type, tenant_id=command.tenant_id, key=command.key, payload=payload),
        )

    async def _passivate_what_moved(self) -> None:
        while True:
            await asyncio.sleep(self._check_every)
            if self._commands is None:
                continue
            for tenant_id, conversation_id in self.chat.conversations.live_keys():
                if not self.owns(conversation_id):
                    log.info("conversation %s moved to another instance", conversation_id)
                    self.chat.passivate(tenant_id, conversation_id)


@functools.lru_cache(maxsize=65_536)
def _partition(conversation_id: uuid.UUID) -> int:
    # murmur2 in Python costs microseconds; every send asks, and conversations are few.
    return partition_for(str(conversation_id).encode(), CHAT_COMMANDS.partitions)


def _reply_key(payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "conversation_id": payload["conversation_id"],
        "sender_id": payload.get("sender_id"),
        "client_msg_id": payload["client_msg_id"],
    }


# Rejections the origin answers as the owner would have (status and code), not as a 500.
_REJECTIONS: dict[str, type[MitraError]] = {
    NotFound.code: NotFound,
    OutsideWindow.code: OutsideWindow,
    MessageRefused.code: MessageRefused,
    WriteRejected.code: WriteRejected,
}


def _rejection(payload: dict[str, Any]) -> MitraError:
    known = _REJECTIONS.get(str(payload.get("code")))
    if known is not None:
        return known(payload.get("message"))
    error = MitraError(payload.get("message"))
    error.code = str(payload.get("code", error.code))
    return error
