"""Request models of `/api/v1/whatsapp`."""

from __future__ import annotations

import uuid

from pydantic import Field

from handlers.schemas.chat import ClientMsgId
from handlers.schemas.common import RequestModel, ResponseModel


class TemplateSendRequest(RequestModel):
    customer_id: uuid.UUID
    template: str = Field(pattern=r"^[a-z0-9_]{1,512}$", description="the approved template")
    language: str = Field(pattern=r"^[a-z]{2,3}(_[A-Z]{2})?$", description="e.g. en_US, hi")
    parameters: list[str] = Field(
        default_factory=list, max_length=20, description="the body's {{1}}, {{2}}, ... in order"
    )
    client_msg_id: ClientMsgId | None = Field(
        None, description="the same id again returns the first acceptance and sends nothing"
    )


class TemplateResponse(ResponseModel):
    name: str
    language: str
    status: str = Field(description="Meta's review status: APPROVED, PENDING, REJECTED, ...")
    category: str
    body_parameters: int = Field(description="how many {{n}} the body takes")
    header_parameters: int
