"""The frames the server sends on `/ws`, as models: the socket contract's other half.

The hot path builds these frames as plain dicts (encoded once for every member, see
`handlers.chat_frames`); these models describe them for the AsyncAPI document, and a contract
test validates every frame a real session receives against them, so neither can drift.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field

from handlers.schemas.common import ResponseModel


class _ServerFrame(ResponseModel):
    # A frame with a field the document does not name is drift: the contract test fails.
    model_config = ConfigDict(extra="forbid")


class AuthOkFrame(_ServerFrame):
    type: Literal["auth_ok"]
    user_id: uuid.UUID


class JoinedFrame(_ServerFrame):
    type: Literal["joined"]
    conversation_id: uuid.UUID
    last_seq: int
    since_seq: int = Field(description="the since_seq used: clamped to last_seq")
    online: list[uuid.UUID]
    ref: str | None


class MessageFrame(_ServerFrame):
    type: Literal["message"]
    conversation_id: uuid.UUID
    seq: int
    message_id: uuid.UUID
    sender_id: uuid.UUID | None
    sender_type: Literal["user", "customer", "bot", "system"]
    client_msg_id: str
    body: str
    channel: Literal["app", "whatsapp"]
    sent_at: datetime
    external_id: str | None = Field(None, description="a channel's own id (WhatsApp wamid)")
    meta: dict[str, Any] | None = Field(None, description="reply context, media, location...")


class AckFrame(_ServerFrame):
    type: Literal["ack"]
    conversation_id: uuid.UUID
    client_msg_id: str
    seq: int
    message_id: uuid.UUID


class ErrorFrame(_ServerFrame):
    type: Literal["error"]
    code: str = Field(description="one of the codes in `x-error-codes`")
    message: str
    ref: str | None = Field(description="the `ref` (or `client_msg_id`) of the frame refused")


class PongFrame(_ServerFrame):
    type: Literal["pong"]
    ref: str | None


class TypingRelayFrame(_ServerFrame):
    """Another member is typing."""

    type: Literal["typing"]
    conversation_id: uuid.UUID
    user_id: uuid.UUID


class ReadRelayFrame(_ServerFrame):
    """How far another member has read."""

    type: Literal["read"]
    conversation_id: uuid.UUID
    user_id: uuid.UUID
    seq: int


class PresenceFrame(_ServerFrame):
    type: Literal["presence"]
    conversation_id: uuid.UUID
    user_id: uuid.UUID
    status: Literal["online", "offline"]


class StatusFrame(_ServerFrame):
    """How far a WhatsApp message got, from Meta; only ever forward."""

    type: Literal["status"]
    conversation_id: uuid.UUID
    seq: int
    message_id: uuid.UUID
    status: Literal["accepted", "sent", "delivered", "read", "failed", "unknown"]
    error: dict[str, Any] | None = Field(description="{code, title} from Meta when failed")


class ModeFrame(_ServerFrame):
    """Who answers the customer now: the assistant ("bot") or a person ("agent"). To every
    member's sockets; the conversation's log has a system message too."""

    type: Literal["mode"]
    conversation_id: uuid.UUID
    mode: Literal["bot", "agent"]


class EscalationFrame(_ServerFrame):
    """The assistant handed a customer over: to the agent's (and staff members') sockets; the
    callback request is in `GET /api/v1/callbacks`."""

    type: Literal["escalation"]
    conversation_id: uuid.UUID
    reason: Literal["asked_for_agent", "low_confidence"]
    callback_id: uuid.UUID


class ImportProgressFrame(_ServerFrame):
    """An import's progress, to the sockets of its uploader and of the book's agent: at least
    every `imports.progress_interval_seconds` while it runs, and once with `finished` true."""

    type: Literal["import_progress"]
    import_id: uuid.UUID
    status: str = Field(description="queued, parsing, validating, writing, or the final status")
    total: int | None = Field(description="rows to import (an xlsx's is an estimate until done)")
    processed: int
    created: int
    updated: int
    unchanged: int
    failed: int
    rows_per_second: float | None
    finished: bool


SERVER_FRAMES: dict[str, type[_ServerFrame]] = {
    model.model_fields["type"].annotation.__args__[0]: model  # type: ignore[union-attr]
    for model in (
        AuthOkFrame,
        JoinedFrame,
        MessageFrame,
        AckFrame,
        ErrorFrame,
        PongFrame,
        TypingRelayFrame,
        ReadRelayFrame,
        PresenceFrame,
        StatusFrame,
        ModeFrame,
        EscalationFrame,
        ImportProgressFrame,
    )
}
