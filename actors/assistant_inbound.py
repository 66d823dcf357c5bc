"""The `assistant` consumer group on `chat.events`: accepted messages to the assistant actors.

Events are keyed by conversation, so one conversation's messages reach the assistant in seq
order: an agent's message is seen (and switches the mode) before the customer's next one. The
customer's ack never waits for any of this: it went out when the message was committed.
Redelivery is harmless: a reply's client id is derived from the message it answers, so the
conversation actor stores it once, and a mode switch happens only from the other mode.
"""

from __future__ import annotations

import logging
import uuid
from collections import OrderedDict
from functools import partial
from typing import Any

import pykka

from actors.assistant import NO_CUSTOMER, AssistantActor, AssistantParts, CustomerMessage
from actors.pool import Activation, ActorPool
from actors.system import ActorSystem
from mitra.chat import StoredMessage
from mitra.errors import InvalidInput
from streams.base import RetryPolicy, Streams, Subscription
from streams.envelope import Event
from streams.topics import CHAT_EVENTS

log = logging.getLogger("mitra.assistant.inbound")

GROUP = "assistant"
STAFF_CHATS_KEPT = 50_000
ANSWERED_BY = frozenset({"user", "customer"})
"""Messages the assistant reads: people's. Its own ("bot") and mode notices ("system") not."""


class AssistantInbound:
    def __init__(self, streams: Streams, system: ActorSystem, parts: AssistantParts) -> None:
        self._streams = streams
        self._parts = parts
        self.actors: ActorPool[uuid.UUID] = system.pool(
            "assistant", partial(_start, parts), idle_timeout_seconds=600.0, max_live=10_000
        )
        self._subscription: Subscription | None = None
        # Staff chats have no customer and never will: after the first look, their messages
        # cost this set lookup, not a thread hop and a read.
        self._staff_chats: OrderedDict[uuid.UUID, None] = OrderedDict()
        # An LLM answer may take every attempt and the backoff between them.
        self._timeout = (parts.llm.total_timeout if parts.llm else 0) + 4 * parts.io_timeout

    async def start(self) -> None:
        self._subscription = await self._streams.subscribe(
            [CHAT_EVENTS.name],
            GROUP,
            self.handle,
            retry=RetryPolicy(max_attempts=5, initial_backoff=0.2, give_up_on=(InvalidInput,)),
            # Messages from before the assistant existed are not questions to answer now.
            offset_reset="latest",
        )

    async def stop(self) -> None:
        if self._subscription is not None:
            await self._subscription.stop()

    async def handle(self, event: Event) -> None:
        if event.type != "message.accepted":
            return
        if event.payload.get("sender_type") not in ANSWERED_BY:
            return
        message = StoredMessage.from_payload(event.payload)
        if message.conversation_id in self._staff_chats:
            return
        tenant_id = uuid.UUID(event.tenant_id)
        done = await self.actors.ask(
            tenant_id, CustomerMessage(tenant_id, message), timeout=self._timeout
        )
        if done == NO_CUSTOMER:
            self._staff_chats[message.conversation_id] = None
            while len(self._staff_chats) > STAFF_CHATS_KEPT:
                self._staff_chats.popitem(last=False)


def _start(parts: AssistantParts, activation: Activation[uuid.UUID]) -> pykka.ActorRef[Any]:
    return AssistantActor.start(activation, parts=parts)
