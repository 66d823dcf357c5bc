"""The tenant actor: one per tenant, made on first use; the registry of its live conversations."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from actors.pool import Activation
from actors.runtime import BridgedActor


@dataclass(frozen=True)
class ConversationActivated:
    conversation_id: uuid.UUID


@dataclass(frozen=True)
class ConversationPassivated:
    conversation_id: uuid.UUID


@dataclass(frozen=True)
class LiveConversations:
    """Ask: which of this tenant's conversations have a live actor on this instance."""


class TenantActor(BridgedActor):
    """Knows which of its tenant's conversations are live here.

    Conversation actors report their activation and passivation upward with `tell`. Message
    traffic goes straight to the conversation actors (one thread hop, not two); the tenant actor
    is where per-tenant questions are answered, such as which conversations to drain.
    """

    kind = "tenant"

    def __init__(
        self,
        activation: Activation[uuid.UUID],
        live_keys: Callable[[], Iterable[tuple[uuid.UUID, uuid.UUID]]],
    ) -> None:
        super().__init__(runtime=activation.runtime, start_after=activation.predecessor)
        self.tenant_id = activation.key
        self._live_keys = live_keys
        self._live: set[uuid.UUID] = set()

    def on_start(self) -> None:
        # A tenant actor passivated while its conversations lived on rebuilds from the pool.
        self._live = {cid for tid, cid in self._live_keys() if tid == self.tenant_id}

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, ConversationActivated):
            self._live.add(message.conversation_id)
        elif isinstance(message, ConversationPassivated):
            self._live.discard(message.conversation_id)
        elif isinstance(message, LiveConversations):
            return frozenset(self._live)
        else:
            raise TypeError(f"tenant actor got {type(message).__name__}")
        return None
