"""Request and response models of `/api/v1/whatsapp`."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import Field, model_validator

from handlers.schemas.chat import ClientMsgId
from handlers.schemas.common import RequestModel, ResponseModel
from mitra.whatsapp.graph_messages import (
    BUTTON_ID_MAX,
    BUTTON_TITLE_MAX,
    BUTTONS_BODY_MAX,
    CAPTION_MAX,
    FILENAME_MAX,
    HEADER_TEXT_MAX,
    LIST_BODY_MAX,
    LIST_BUTTON_MAX,
    MAX_BUTTONS,
    MAX_ROWS,
    MAX_SECTIONS,
    ROW_DESCRIPTION_MAX,
    ROW_ID_MAX,
    ROW_TITLE_MAX,
    SECTION_TITLE_MAX,
)

# Meta's limits are checked by the message types the sender posts
# (`mitra.whatsapp.graph_messages`); the fields below state the same numbers, taken from there,
# so the OpenAPI document says what is refused and a too-long value is a 422 naming its field.


class ReplyButtonSpec(RequestModel):
    id: str = Field(min_length=1, max_length=BUTTON_ID_MAX)
    title: str = Field(min_length=1, max_length=BUTTON_TITLE_MAX)


class ListRowSpec(RequestModel):
    id: str = Field(min_length=1, max_length=ROW_ID_MAX)
    title: str = Field(min_length=1, max_length=ROW_TITLE_MAX)
    description: str | None = Field(None, min_length=1, max_length=ROW_DESCRIPTION_MAX)


class ListSectionSpec(RequestModel):
    title: str | None = Field(
        None,
        min_length=1,
        max_length=SECTION_TITLE_MAX,
        description="required when the list has more than one section",
    )
    rows: list[ListRowSpec] = Field(min_length=1, max_length=MAX_ROWS)


class ListSpec(RequestModel):
    button: str = Field(
        min_length=1, max_length=LIST_BUTTON_MAX, description="the label that opens the list"
    )
    sections: list[ListSectionSpec] = Field(min_length=1, max_length=MAX_SECTIONS)


class MediaSpec(RequestModel):
    kind: Literal["image", "document", "audio", "video"]
    link: str = Field(pattern=r"^https://", max_length=2000, description="Meta fetches it")
    caption: str | None = Field(None, min_length=1, max_length=CAPTION_MAX)
    filename: str | None = Field(None, min_length=1, max_length=FILENAME_MAX)


class TemplateHeaderMediaSpec(RequestModel):
    """The media of a template whose header is an image, a document or a video."""

    kind: Literal["image", "document", "video"]
    link: str = Field(pattern=r"^https://", max_length=2000, description="Meta fetches it")
    filename: str | None = Field(
        None, min_length=1, max_length=FILENAME_MAX, description="documents only"
    )


HeaderParameter = Annotated[str, Field(min_length=1, max_length=HEADER_TEXT_MAX)]


class WhatsAppSendRequest(RequestModel):
    """One of: an approved `template` (also outside the 24-hour window), reply `buttons` (1-3)
    or a `list` with a `body`, or `media` by link."""

    customer_id: uuid.UUID
    template: str | None = Field(None, pattern=r"^[a-z0-9_]{1,512}$")
    language: str | None = Field(None, pattern=r"^[a-z]{2,3}(_[A-Z]{2})?$", description="en_US")
    parameters: list[str] = Field(
        default_factory=list, max_length=20, description="the body's {{1}}, {{2}}, ... in order"
    )
    header_parameters: list[HeaderParameter] = Field(
        default_factory=list,
        max_length=1,
        description="a template's text header's {{1}}, when its header has one",
    )
    header_media: TemplateHeaderMediaSpec | None = Field(
        None, description="a template's header image, document or video, when it has one"
    )
    body: str | None = Field(
        None,
        min_length=1,
        max_length=LIST_BODY_MAX,
        description=f"the text above buttons (at most {BUTTONS_BODY_MAX:,} characters) or a "
        f"list (at most {LIST_BODY_MAX:,})",
    )
    buttons: list[ReplyButtonSpec] | None = Field(None, min_length=1, max_length=MAX_BUTTONS)
    # `list` on the wire; a field of that name would shadow the builtin in this class.
    list_: ListSpec | None = Field(None, alias="list")
    media: MediaSpec | None = None
    client_msg_id: ClientMsgId | None = Field(
        None, description="the same id again returns the first acceptance and sends nothing"
    )

    @model_validator(mode="after")
    def _one_kind(self) -> WhatsAppSendRequest:
        given = {"template": self.template, "buttons": self.buttons, "list": self.list_,
                 "media": self.media}  # fmt: skip
        kinds = [kind for kind, value in given.items() if value]
        if len(kinds) != 1:
            raise ValueError("give exactly one of template, buttons, list or media")
        if self.template and not self.language:
            raise ValueError("a template needs its language")
        if (self.header_parameters or self.header_media) and not self.template:
            raise ValueError("header_parameters and header_media belong to a template")
        if self.header_parameters and self.header_media:
            raise ValueError("a template header is text or media, not both")
        if kinds[0] in ("buttons", "list") and not self.body:
            raise ValueError(f"{kinds[0]} need a body")
        return self


class TemplateResponse(ResponseModel):
    name: str
    language: str
    status: str = Field(description="Meta's review status: APPROVED, PENDING, REJECTED, ...")
    category: str
    body_parameters: int = Field(description="how many {{n}} the body takes")
    header_parameters: int
