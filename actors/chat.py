"""The loop-side entry to the chat actors: tenant and conversation pools, and the writer."""

from __future__ import annotations

import uuid
from functools import partial
from typing import Any

import pykka

from actors.conversation import (
    CheckMember,
    ConversationActor,
    ConversationKey,
    ReloadMembers,
    SendMessage,
)
from actors.pool import Activation, ActorPool
from actors.runtime import wait_concurrent
from actors.system import ActorSystem
from actors.tenant import LiveConversations, TenantActor
from mitra.chat import ConversationService, MessageWriter, StoredMessage
from mitra.errors import ActorTimeout
from mitra.settings import ActorsSettings


class ChatActors:
    """Sends messages through the conversation's actor and waits for the commit.

    Conversations live in one pool per instance, so `actors.max_live_conversations` caps them
    across tenants (least recently used passivated first); each tenant's actor keeps the
    registry of its own live conversations.
    """

    def __init__(
        self,
        system: ActorSystem,
        conversations: ConversationService,
        writer: MessageWriter,
        settings: ActorsSettings,
        *,
        actor_class: type[ConversationActor] = ConversationActor,
    ) -> None:
        self._settings = settings
        # Tenants first: the system closes pools in reverse, so conversations drain before the
        # tenant actors they report to.
        self.tenants: ActorPool[uuid.UUID] = system.pool(
            "tenant",
            self._start_tenant,
            # A tenant outlives its conversations' idleness; it rebuilds from the pool anyway.
            idle_timeout_seconds=settings.idle_timeout_seconds * 2,
            max_live=100_000,
        )
        self.conversations: ActorPool[ConversationKey] = system.pool(
            "conversation",
            partial(self._start_conversation, actor_class, conversations, writer),
            idle_timeout_seconds=settings.idle_timeout_seconds,
            max_live=settings.max_live_conversations,
        )

    def _start_conversation(
        self,
        actor_class: type[ConversationActor],
        conversations: ConversationService,
        writer: MessageWriter,
        activation: Activation[ConversationKey],
    ) -> pykka.ActorRef[Any]:
        return actor_class.start(
            activation,
            conversations=conversations,
            writer=writer,
            io_timeout=self._settings.ask_timeout_seconds,
            tenants=self.tenants,
        )

    def _start_tenant(self, activation: Activation[uuid.UUID]) -> pykka.ActorRef[Any]:
        return TenantActor.start(activation, self.conversations.live_keys)

    async def send(
        self, tenant_id: uuid.UUID, conversation_id: uuid.UUID, message: SendMessage
    ) -> StoredMessage:
        """Accept `message` into the conversation; returns once it is committed (the ack)."""
        timeout = self._settings.ask_timeout_seconds
        accepted = await self.conversations.ask(
            (tenant_id, conversation_id), message, timeout=timeout
        )
        try:
            # The shared ack stays uncancelled when this caller goes away: a retry of the same
            # client_msg_id may be waiting on it too.
            stored: StoredMessage = await wait_concurrent(accepted, timeout)
        except TimeoutError:
            raise ActorTimeout("the message was not stored in time; send it again") from None
        return stored

    async def is_member(
        self, tenant_id: uuid.UUID, conversation_id: uuid.UUID, user_id: uuid.UUID
    ) -> bool:
        member = await self.conversations.ask(
            (tenant_id, conversation_id),
            CheckMember(user_id),
            timeout=self._settings.ask_timeout_seconds,
        )
        return bool(member)

    def members_changed(self, tenant_id: uuid.UUID, conversation_id: uuid.UUID) -> None:
        if (tenant_id, conversation_id) in self.conversations:
            self.conversations.tell((tenant_id, conversation_id), ReloadMembers())

    async def live_conversations(self, tenant_id: uuid.UUID) -> frozenset[uuid.UUID]:
        live = await self.tenants.ask(
            tenant_id, LiveConversations(), timeout=self._settings.ask_timeout_seconds
        )
        return frozenset(live)

    def passivate(self, tenant_id: uuid.UUID, conversation_id: uuid.UUID) -> bool:
        return self.conversations.passivate((tenant_id, conversation_id))
