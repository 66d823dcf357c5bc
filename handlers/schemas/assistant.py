"""Request and response models of the assistant's endpoints: modes, callbacks, the knowledge
base and the tenant's own OpenAI key."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field

from handlers.schemas.common import QueryModel, RequestModel, ResponseModel, omittable
from handlers.schemas.integrations import HEADER_SAFE

Intent = Literal[
    "policy_status", "premium_due", "premium_payment", "claim_process", "agent_contact",
    "greeting", "thanks",
]  # fmt: skip
Language = Literal["en", "hi", "hi-Latn"]
Tag = Field(min_length=1, max_length=40)


class ModeResponse(ResponseModel):
    conversation_id: uuid.UUID
    mode: Literal["bot", "agent"]
    changed: bool


class CallbackQuery(QueryModel):
    status: Literal["open", "done"] | None = None


class CallbackPatch(RequestModel):
    status: Literal["open", "done"]


class CallbackMessage(ResponseModel):
    seq: int
    sender_type: str
    sender_id: uuid.UUID | None
    body: str


class CallbackResponse(ResponseModel):
    id: uuid.UUID
    conversation_id: uuid.UUID
    customer_id: uuid.UUID | None
    agent_id: uuid.UUID | None
    reason: str
    last_messages: list[CallbackMessage]
    status: str
    created_at: datetime
    done_at: datetime | None


class ArticleRequest(RequestModel):
    question: str = Field(min_length=3, max_length=1000)
    answer: str = Field(min_length=1, max_length=4000)
    intent: Intent | None = None
    language: Language = "en"
    tags: list[str] = Field(default_factory=list, max_length=20)


class ArticlePatch(RequestModel):
    question: str = omittable(min_length=3, max_length=1000)
    answer: str = omittable(min_length=1, max_length=4000)
    intent: Intent | None = Field(None, description="null clears it")
    language: Language = omittable()
    tags: list[str] = omittable(max_length=20)


class ArticleQuery(QueryModel):
    q: str | None = Field(None, min_length=1, max_length=200, description="full-text search")


class ArticleResponse(ResponseModel):
    id: uuid.UUID
    question: str
    answer: str
    intent: str | None
    language: str
    tags: list[str]
    created_at: datetime
    updated_at: datetime


class OpenAIIntegrationRequest(RequestModel):
    api_key: str | None = Field(
        None,
        min_length=8,
        max_length=500,
        # A bearer token: the SDK cannot send anything else, and would fail before any request.
        pattern=HEADER_SAFE,
        description="left out, the stored one is kept",
    )
    model: str = Field("gpt-4o-mini", min_length=1, max_length=100, pattern=r"^[\w.:/-]+$")


class OpenAIIntegrationResponse(ResponseModel):
    provider: str
    model: str | None
    api_key: str = Field(description="masked: the last 4 characters at most")
    updated_at: Any


Phrase = Annotated[str, Field(min_length=2, max_length=100)]


class AssistantSettingsRequest(RequestModel):
    default_mode: Literal["bot", "agent"] | None = Field(
        None, description="the mode new customer conversations start in; null: the deployment's"
    )
    phrases: dict[Language, dict[Intent, Annotated[list[Phrase], Field(max_length=50)]]] = Field(
        default_factory=dict,
        description="the agency's own phrases per language and intent, added to the built-in",
    )


class AssistantSettingsResponse(ResponseModel):
    default_mode: Literal["bot", "agent"]
    own_default: bool
    phrases: dict[str, dict[str, list[str]]]
