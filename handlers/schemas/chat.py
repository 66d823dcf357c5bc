"""Models of the chat API: REST bodies and the WebSocket's client frames."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter, model_validator

from handlers.schemas.common import PageQuery, QueryModel, RequestModel, ResponseModel, Seq
from mitra.models.chat import SEQ_MAX
from mitra.settings import BODY_CHARS_CEILING

ClientMsgId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:\-]+$")]
# The limit in force is a setting; the schema states the most it can be, and says which it is.
MessageBody = Annotated[
    str,
    Field(
        min_length=1,
        max_length=BODY_CHARS_CEILING,
        description="at most `chat.max_body_chars` characters (4,000 unless the deployment "
        f"sets it, never more than {BODY_CHARS_CEILING:,}); longer is refused naming `body`",
    ),
]


class OpenConversationRequest(RequestModel):
    """`customer_id` (a conversation with that customer) or `participant_ids` (staff among
    themselves); a policyholder may give neither, for their agent."""

    customer_id: uuid.UUID | None = Field(
        None,
        description="staff: their conversation with this customer; a policyholder: this linked"
        " customer's conversation with their agent (left out: the one customer linked to them)",
    )
    participant_ids: list[uuid.UUID] | None = Field(None, max_length=49)
    title: str | None = Field(None, max_length=200)

    @model_validator(mode="after")
    def _one_kind(self) -> OpenConversationRequest:
        if self.customer_id is not None and self.participant_ids is not None:
            raise ValueError("give either customer_id or participant_ids")
        return self


class ConversationListQuery(PageQuery):
    q: str | None = Field(
        None,
        max_length=100,
        description="part of the customer's name or phone number, or of the conversation's title",
    )


class ConversationResponse(ResponseModel):
    id: uuid.UUID
    customer_id: uuid.UUID | None
    title: str | None
    member_ids: list[uuid.UUID]
    last_seq: int
    last_message_at: datetime | None
    unread: int
    created_at: datetime


class HistoryQuery(QueryModel):
    before_seq: int | None = Field(None, ge=1, le=SEQ_MAX)
    after_seq: Seq | None = None
    limit: int = Field(50, ge=1, le=200)


SendChannel = Annotated[
    Literal["app", "whatsapp"] | None,
    Field(
        description="where the message goes; left out, where the customer last wrote (WhatsApp "
        "within Meta's 24-hour window, else refused with `outside_window`)"
    ),
]


class SendMessageRequest(RequestModel):
    client_msg_id: ClientMsgId
    body: MessageBody
    channel: SendChannel = None


class MessageResponse(ResponseModel):
    conversation_id: uuid.UUID
    seq: int
    message_id: uuid.UUID
    sender_id: uuid.UUID | None
    client_msg_id: str
    body: str
    channel: str
    sent_at: datetime
    sender_type: str = Field(
        description="user (sender_id says who), customer (a WhatsApp sender without an "
        "account), bot or system"
    )
    external_id: str | None = Field(None, description="the channel's own id (a WhatsApp wamid)")
    meta: dict[str, Any] | None = Field(
        None, description="what the channel adds: reply context, media, location, contacts"
    )


# ---- WebSocket client frames ---------------------------------------------------------------


class _Frame(RequestModel):
    ref: str | None = Field(None, max_length=64)


class AuthFrame(_Frame):
    type: Literal["auth"]
    token: str = Field(min_length=1, max_length=4096)


class JoinFrame(_Frame):
    type: Literal["join"]
    conversation_id: uuid.UUID
    since_seq: Seq = 0


class SendFrame(_Frame):
    type: Literal["send"]
    conversation_id: uuid.UUID
    client_msg_id: ClientMsgId
    body: MessageBody
    channel: SendChannel = None


class TypingFrame(_Frame):
    type: Literal["typing"]
    conversation_id: uuid.UUID


class ReadFrame(_Frame):
    type: Literal["read"]
    conversation_id: uuid.UUID
    seq: Seq


class PingFrame(_Frame):
    type: Literal["ping"]


ClientFrame = Annotated[
    AuthFrame | JoinFrame | SendFrame | TypingFrame | ReadFrame | PingFrame,
    Field(discriminator="type"),
]
CLIENT_FRAME: TypeAdapter[ClientFrame] = TypeAdapter(ClientFrame)
FRAME_TYPES = frozenset({"auth", "join", "send", "typing", "read", "ping"})
