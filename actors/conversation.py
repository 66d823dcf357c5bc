"""The conversation actor: one per live conversation, the single writer of its sequence numbers.

It rebuilds its state (members, last seq, recent client message ids) from the database when it
activates, numbers each accepted message, and hands it to the group-committing `MessageWriter`
in seq order. The ack is the writer's future: it resolves only once the message is committed.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from actors.pool import Activation, ActorPool
from actors.runtime import BridgedActor
from actors.tenant import ConversationActivated, ConversationPassivated
from mitra.chat import ConversationService, MessageWriter, PendingMessage, StoredMessage
from mitra.chat.conversations import DEDUPE_WINDOW
from mitra.db import utcnow
from mitra.errors import ActorUnavailable, InvalidInput, NotFound
from mitra.ids import new_id
from mitra.whatsapp.window import OutsideWindow, customer_wrote_at, within_window

log = logging.getLogger("mitra.actors.conversation")

ConversationKey = tuple[uuid.UUID, uuid.UUID]
"""(tenant_id, conversation_id): the tenant travels with the key so activation is scoped."""
_ClientKey = tuple[int | None, str]
"""(the sender's id as an int, client_msg_id): atoms only, see `_Kept`."""
_Ack = concurrent.futures.Future[StoredMessage]
_Kept = tuple[Any, ...]
"""A committed message in the dedupe window, as a plain tuple of atoms (`_keep`).

The window holds up to `DEDUPE_WINDOW` messages per live conversation (85,000 with 171 busy
ones). As `StoredMessage`s with their UUIDs, each was three objects the cycle collector tracks,
and every collection of the older generations walked them all: pauses of 30-130 ms at 1,000
messages/s. A tuple of ints, strings and datetimes is untracked by the first collection that
sees it; the rare retry rebuilds its `StoredMessage`.
"""


AUTO_CHANNEL = "auto"
"""A member's message goes where the customer last wrote: WhatsApp or the app."""


@dataclass(frozen=True)
class SendMessage:
    sender_id: uuid.UUID | None
    client_msg_id: str
    body: str
    channel: str = "app"  # or "whatsapp", or AUTO_CHANNEL
    direction: str = "outbound"
    sender_type: str = "user"
    # The provider's id (a wamid): a redelivery of it is the same message, stored once.
    external_id: str | None = None
    meta: dict[str, Any] | None = None


@dataclass(frozen=True)
class CheckMember:
    user_id: uuid.UUID


@dataclass(frozen=True)
class ReloadMembers:
    """Membership changed in the database; read it again."""


@dataclass(frozen=True)
class _Reset:
    generation: int


class ConversationActor(BridgedActor):
    """Numbers and persists one conversation's messages; nothing else ever assigns its seqs."""

    kind = "conversation"

    def __init__(
        self,
        activation: Activation[ConversationKey],
        *,
        conversations: ConversationService,
        writer: MessageWriter,
        io_timeout: float,
        tenants: ActorPool[uuid.UUID] | None = None,
    ) -> None:
        super().__init__(runtime=activation.runtime, start_after=activation.predecessor)
        self.tenant_id, self.conversation_id = activation.key
        self._conversations = conversations
        self._writer = writer
        self._io_timeout = io_timeout
        self._tenants = tenants
        self._exists = True
        self._members: frozenset[uuid.UUID] = frozenset()
        self._customer_id: uuid.UUID | None = None
        self._customer_user_id: uuid.UUID | None = None
        self._customer_channel: str | None = None
        self._customer_whatsapp_at: datetime | None = None
        self._last_seq = 0
        self._generation = 0
        # (sender, client_msg_id) -> its first acceptance, newest last: the stored message once
        # committed (a future holds a lock and a condition; thousands of them add up), the ack
        # future while the write is pending.
        self._recent: OrderedDict[_ClientKey, _Kept | _Ack] = OrderedDict()
        self._pending: deque[_ClientKey] = deque()

    def on_start(self) -> None:
        try:
            self._load()
        except NotFound:
            # Answer NotFound until passivated, rather than crash: a crash would look like an
            # outage (503) to a client that merely named a conversation that is not there.
            self._exists = False
            return
        self._report(ConversationActivated(self.conversation_id))

    def on_stop(self) -> None:
        self._report(ConversationPassivated(self.conversation_id))

    def on_failure(self, *_: object) -> None:
        self._report(ConversationPassivated(self.conversation_id))

    def _report(self, event: object) -> None:
        if self._tenants is None or not self._exists:
            return
        # Shutting down, the tenant pool may be closed already: its registry goes with it.
        with contextlib.suppress(ActorUnavailable):
            self._tenants.tell(self.tenant_id, event)

    def _load(self) -> None:
        state = self.run_on_loop(
            self._conversations.state(self.tenant_id, self.conversation_id), self._io_timeout
        )
        self._members = state.member_ids
        self._customer_id = state.customer_id
        self._customer_user_id = state.customer_user_id
        self._customer_channel = state.customer_channel
        self._customer_whatsapp_at = state.customer_whatsapp_at
        self._last_seq = state.last_seq
        self._recent.clear()
        self._pending.clear()
        for message in state.recent:
            self._recent[_client_key(message.sender_id, message.client_msg_id)] = _keep(message)

    def on_receive(self, message: Any) -> Any:
        if not self._exists:
            raise NotFound("conversation not found")
        if isinstance(message, SendMessage):
            return self._accept(message)
        if isinstance(message, CheckMember):
            return self._is_member(message.user_id)
        if isinstance(message, _Reset):
            return self._reset(message.generation)
        if isinstance(message, ReloadMembers):
            # Members only: reloading the whole state would rewind the seq past writes still
            # pending, and the next message would take a seq already handed out.
            self._reload_members()
            return None
        raise TypeError(f"conversation actor got {type(message).__name__}")

    def _accept(self, send: SendMessage) -> concurrent.futures.Future[StoredMessage]:
        # WhatsApp senders without an account arrive with sender None and are not members.
        if send.sender_id is not None and not self._is_member(send.sender_id):
            raise NotFound("conversation not found")
        self._settle_pending()
        key = _client_key(send.sender_id, send.client_msg_id)
        earlier = self._recent.get(key)
        # A retry after a lost ack: the first acceptance answers, nothing new is stored.
        if isinstance(earlier, tuple):
            self._recent.move_to_end(key)
            return _acked(_restore(earlier, self.conversation_id))
        if earlier is not None and not _failed(earlier):
            self._recent.move_to_end(key)
            return earlier
        now = utcnow()
        channel = self._route(send, now)
        self._last_seq += 1
        pending = PendingMessage(
            tenant_id=self.tenant_id,
            stored=StoredMessage(
                conversation_id=self.conversation_id,
                seq=self._last_seq,
                message_id=new_id(),
                sender_id=send.sender_id,
                client_msg_id=send.client_msg_id,
                body=send.body,
                channel=channel,
                sent_at=now,
                sender_type=send.sender_type,
                external_id=send.external_id,
                meta=send.meta,
            ),
            direction=send.direction,
            generation=self._generation,
            on_rejected=self._rejected,
        )
        future = self._writer.submit(pending)
        self._recent[key] = future
        self._pending.append(key)
        while len(self._recent) > DEDUPE_WINDOW:
            self._recent.popitem(last=False)
        return future

    def _is_member(self, user_id: uuid.UUID) -> bool:
        if user_id in self._members:
            return True
        # Someone added on another instance a moment ago: the members_changed event may still
        # be on its way. Asking the database before refusing costs a refusal one read, and
        # spares the new member a spurious not_member.
        self._reload_members()
        return user_id in self._members

    def _reload_members(self) -> None:
        self._members = self.run_on_loop(
            self._conversations.member_ids(self.tenant_id, self.conversation_id), self._io_timeout
        )

    def _route(self, send: SendMessage, now: datetime) -> str:
        """The channel this message is stored (and delivered) on; refuses a WhatsApp message
        Meta would refuse, before it is numbered."""
        from_customer = send.sender_type == "customer" or (
            send.sender_id is not None and send.sender_id == self._customer_user_id
        )
        if from_customer:
            # Only the WhatsApp consumer speaks for a customer on WhatsApp; their app is the app.
            channel = send.channel if send.sender_type == "customer" else "app"
            self._customer_channel = channel
            if channel == "whatsapp":
                wrote = customer_wrote_at(now, send.meta)
                if self._customer_whatsapp_at is None or wrote > self._customer_whatsapp_at:
                    self._customer_whatsapp_at = wrote
            return channel
        channel = send.channel
        if channel == AUTO_CHANNEL:
            outward = send.direction == "outbound" and self._customer_channel == "whatsapp"
            channel = "whatsapp" if outward else "app"
        if channel == "whatsapp" and send.direction == "outbound":
            if self._customer_id is None:
                raise InvalidInput.for_field("channel", "this conversation has no customer")
            templated = send.meta is not None and "template" in send.meta
            if not templated and not within_window(self._customer_whatsapp_at, now):
                raise OutsideWindow()
        return channel

    def _settle_pending(self) -> None:
        """Replace the acks that have resolved, oldest first, by what they resolved to."""
        while self._pending:
            key = self._pending[0]
            entry = self._recent.get(key)
            if isinstance(entry, concurrent.futures.Future):
                if not entry.done():
                    return
                if _failed(entry):
                    del self._recent[key]  # not stored: the same client id again is a new send
                else:
                    self._recent[key] = _keep(entry.result())
            self._pending.popleft()

    def _rejected(self, generation: int) -> None:
        # Called by the writer on the loop; events go to the actor with tell, never ask.
        self.actor_ref.tell(_Reset(generation))

    def _reset(self, generation: int) -> None:
        """A write failed: what is stored is the truth. Reload, and start a new generation so
        the writer drops anything numbered before this point."""
        if generation < self._generation:
            return
        log.warning(
            "conversation %s: write rejected; reloading from seq %d",
            self.conversation_id,
            self._last_seq,
        )
        self._load()
        self._generation = generation + 1


def _client_key(sender_id: uuid.UUID | None, client_msg_id: str) -> _ClientKey:
    return (None if sender_id is None else sender_id.int, client_msg_id)


def _keep(message: StoredMessage) -> _Kept:
    sender = message.sender_id
    return (
        message.seq,
        message.message_id.int,
        None if sender is None else sender.int,
        message.client_msg_id,
        message.body,
        message.channel,
        message.sent_at,
        message.sender_type,
        message.external_id,
        message.meta,
    )


def _restore(kept: _Kept, conversation_id: uuid.UUID) -> StoredMessage:
    seq, message_id, sender, client_msg_id, body, channel, sent_at, sender_type, external, meta = (
        kept
    )
    return StoredMessage(
        conversation_id=conversation_id,
        seq=seq,
        message_id=uuid.UUID(int=message_id),
        sender_id=None if sender is None else uuid.UUID(int=sender),
        client_msg_id=client_msg_id,
        body=body,
        channel=channel,
        sent_at=sent_at,
        sender_type=sender_type,
        external_id=external,
        meta=meta,
    )


def _acked(message: StoredMessage) -> _Ack:
    done: _Ack = concurrent.futures.Future()
    done.set_result(message)
    return done


def _failed(future: concurrent.futures.Future[StoredMessage]) -> bool:
    return future.done() and (future.cancelled() or future.exception() is not None)
