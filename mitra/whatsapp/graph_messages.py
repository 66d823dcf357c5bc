"""The messages Mitra sends on WhatsApp, checked against Meta's limits, and their wire bodies.

Each type refuses on construction what the Cloud API would refuse after a round trip (with a
400 that costs a request against the number's throughput), and `wire_body()` returns the JSON
body of `POST /{phone_number_id}/messages` exactly as Meta documents it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

# WhatsApp addresses people by E.164 number; Meta wants the digits without the plus.
_E164 = re.compile(r"\+?[1-9][0-9]{6,14}")
_TEMPLATE_NAME = re.compile(r"[a-z0-9_]{1,512}")
# Meta's template languages are `en`, `en_US`, `fil`, `zh_HK`, ...
_LANGUAGE = re.compile(r"[a-z]{2,3}(_[A-Z]{2})?")
# Meta refuses a template parameter with a new line, a tab or more than four spaces in a row
# (error 132018), so it is refused here before it costs a request.
_BAD_PARAMETER = re.compile(r"[\n\t]| {5,}")

TEXT_BODY_MAX = 4096
CAPTION_MAX = 1024
HEADER_TEXT_MAX = 60
FOOTER_MAX = 60
BUTTONS_BODY_MAX = 1024
BUTTON_TITLE_MAX = 20
BUTTON_ID_MAX = 256
MAX_BUTTONS = 3
LIST_BODY_MAX = 4096
LIST_BUTTON_MAX = 20
MAX_SECTIONS = 10
SECTION_TITLE_MAX = 24
MAX_ROWS = 10
ROW_ID_MAX = 200
ROW_TITLE_MAX = 24
ROW_DESCRIPTION_MAX = 72
FILENAME_MAX = 240

MediaKind: TypeAlias = Literal["image", "document", "audio", "video"]
TemplateMediaKind: TypeAlias = Literal["image", "document", "video"]


def _text(field: str, value: object, limit: int) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{field}: must be a non-empty string")
    if len(value) > limit:
        raise ValueError(f"{field}: at most {limit} characters, got {len(value)}")


def _optional_text(field: str, value: object, limit: int) -> None:
    if value is not None:
        _text(field, value, limit)


def _recipient(to: object) -> None:
    if not isinstance(to, str) or not _E164.fullmatch(to):
        raise ValueError("to: must be an E.164 phone number such as +919876543210")


def _link(field: str, link: object) -> None:
    if not isinstance(link, str) or not link.startswith(("https://", "http://")):
        raise ValueError(f"{field}: must be an http(s) URL")
    if len(link) > 2048:
        raise ValueError(f"{field}: at most 2048 characters")


def _as_tuple(instance: object, name: str) -> tuple[Any, ...]:
    # Callers naturally pass lists; stored as tuples, the frozen message stays immutable and
    # hashable after it was checked.
    value = getattr(instance, name)
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ValueError(f"{name}: must be a sequence")
    items = tuple(value)
    object.__setattr__(instance, name, items)
    return items


def _envelope(to: str, kind: str, content: dict[str, Any]) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to.removeprefix("+"),
        "type": kind,
        kind: content,
    }


def _header(text: str | None) -> dict[str, Any]:
    return {} if text is None else {"header": {"type": "text", "text": text}}


def _footer(text: str | None) -> dict[str, Any]:
    return {} if text is None else {"footer": {"text": text}}


@dataclass(frozen=True)
class TextMessage:
    """Free-form text; only inside the 24-hour customer-service window."""

    to: str
    body: str
    preview_url: bool = False

    def __post_init__(self) -> None:
        _recipient(self.to)
        _text("body", self.body, TEXT_BODY_MAX)

    def wire_body(self) -> dict[str, Any]:
        return _envelope(self.to, "text", {"preview_url": self.preview_url, "body": self.body})


@dataclass(frozen=True)
class TemplateMedia:
    """The media header of a template (a policy document, a photo), sent by link."""

    kind: TemplateMediaKind
    link: str
    filename: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("image", "document", "video"):
            raise ValueError("header_media.kind: must be image, document or video")
        _link("header_media.link", self.link)
        if self.filename is not None and self.kind != "document":
            raise ValueError("header_media.filename: only a document has a filename")
        _optional_text("header_media.filename", self.filename, FILENAME_MAX)

    def parameter(self) -> dict[str, Any]:
        media: dict[str, Any] = {"link": self.link}
        if self.filename is not None:
            media["filename"] = self.filename
        return {"type": self.kind, self.kind: media}


@dataclass(frozen=True)
class TemplateMessage:
    """An approved template: the only thing that may open a conversation outside the window."""

    to: str
    name: str
    language: str
    body_parameters: Sequence[str] = ()
    header_parameters: Sequence[str] = ()
    header_media: TemplateMedia | None = None

    def __post_init__(self) -> None:
        _recipient(self.to)
        if not isinstance(self.name, str) or not _TEMPLATE_NAME.fullmatch(self.name):
            raise ValueError("name: lowercase letters, digits and underscores, 1-512 of them")
        if not isinstance(self.language, str) or not _LANGUAGE.fullmatch(self.language):
            raise ValueError("language: a code such as en, hi or en_US")
        for index, value in enumerate(_as_tuple(self, "body_parameters")):
            self._parameter(f"body_parameters[{index}]", value, 32768)
        header = _as_tuple(self, "header_parameters")
        # A template header holds one variable at most, text or media, never both.
        if len(header) > 1:
            raise ValueError("header_parameters: a template header has at most one parameter")
        if header and self.header_media is not None:
            raise ValueError("header_parameters: a header is either text or media, not both")
        for index, value in enumerate(header):
            self._parameter(f"header_parameters[{index}]", value, HEADER_TEXT_MAX)
        if self.header_media is not None and not isinstance(self.header_media, TemplateMedia):
            raise ValueError("header_media: must be a TemplateMedia")

    @staticmethod
    def _parameter(field: str, value: object, limit: int) -> None:
        _text(field, value, limit)
        assert isinstance(value, str)
        if _BAD_PARAMETER.search(value):
            raise ValueError(f"{field}: no new lines, tabs or more than four spaces in a row")

    def wire_body(self) -> dict[str, Any]:
        components: list[dict[str, Any]] = []
        if self.header_media is not None:
            components.append({"type": "header", "parameters": [self.header_media.parameter()]})
        elif self.header_parameters:
            components.append(
                {"type": "header", "parameters": _text_parameters(self.header_parameters)}
            )
        if self.body_parameters:
            components.append(
                {"type": "body", "parameters": _text_parameters(self.body_parameters)}
            )
        template: dict[str, Any] = {"name": self.name, "language": {"code": self.language}}
        if components:
            template["components"] = components
        return _envelope(self.to, "template", template)


def _text_parameters(values: Sequence[str]) -> list[dict[str, Any]]:
    return [{"type": "text", "text": value} for value in values]


@dataclass(frozen=True)
class ReplyButton:
    """One quick-reply button; `id` comes back in the customer's `button_reply`."""

    id: str
    title: str


@dataclass(frozen=True)
class InteractiveButtons:
    """A question with one to three reply buttons."""

    to: str
    body: str
    buttons: Sequence[ReplyButton]
    header: str | None = None
    footer: str | None = None

    def __post_init__(self) -> None:
        _recipient(self.to)
        _text("body", self.body, BUTTONS_BODY_MAX)
        _optional_text("header", self.header, HEADER_TEXT_MAX)
        _optional_text("footer", self.footer, FOOTER_MAX)
        buttons = _as_tuple(self, "buttons")
        if not 1 <= len(buttons) <= MAX_BUTTONS:
            raise ValueError(f"buttons: 1 to {MAX_BUTTONS} buttons, got {len(buttons)}")
        for index, button in enumerate(buttons):
            if not isinstance(button, ReplyButton):
                raise ValueError(f"buttons[{index}]: must be a ReplyButton")
            _text(f"buttons[{index}].id", button.id, BUTTON_ID_MAX)
            _text(f"buttons[{index}].title", button.title, BUTTON_TITLE_MAX)
        # The customer's answer is only known by its id, and two equal titles cannot be told
        # apart on the phone; Meta refuses both.
        if len({button.id for button in buttons}) != len(buttons):
            raise ValueError("buttons: ids must be unique")
        if len({button.title for button in buttons}) != len(buttons):
            raise ValueError("buttons: titles must be unique")

    def wire_body(self) -> dict[str, Any]:
        buttons = [
            {"type": "reply", "reply": {"id": button.id, "title": button.title}}
            for button in self.buttons
        ]
        interactive = {
            "type": "button",
            **_header(self.header),
            "body": {"text": self.body},
            **_footer(self.footer),
            "action": {"buttons": buttons},
        }
        return _envelope(self.to, "interactive", interactive)


@dataclass(frozen=True)
class ListRow:
    """One choice of a list; `id` comes back in the customer's `list_reply`."""

    id: str
    title: str
    description: str | None = None


@dataclass(frozen=True)
class ListSection:
    """A group of rows; its title is required once a list has more than one section."""

    rows: Sequence[ListRow]
    title: str | None = None


@dataclass(frozen=True)
class InteractiveList:
    """A menu behind one button: up to ten sections, ten rows in all."""

    to: str
    body: str
    button: str
    sections: Sequence[ListSection]
    header: str | None = None
    footer: str | None = None

    def __post_init__(self) -> None:
        _recipient(self.to)
        _text("body", self.body, LIST_BODY_MAX)
        _text("button", self.button, LIST_BUTTON_MAX)
        _optional_text("header", self.header, HEADER_TEXT_MAX)
        _optional_text("footer", self.footer, FOOTER_MAX)
        sections = _as_tuple(self, "sections")
        if not 1 <= len(sections) <= MAX_SECTIONS:
            raise ValueError(f"sections: 1 to {MAX_SECTIONS} sections, got {len(sections)}")
        ids: set[str] = set()
        total = 0
        for s, section in enumerate(sections):
            if not isinstance(section, ListSection):
                raise ValueError(f"sections[{s}]: must be a ListSection")
            if len(sections) > 1 or section.title is not None:
                _text(f"sections[{s}].title", section.title, SECTION_TITLE_MAX)
            rows = _as_tuple(section, "rows")
            if not rows:
                raise ValueError(f"sections[{s}].rows: at least one row")
            for r, row in enumerate(rows):
                field = f"sections[{s}].rows[{r}]"
                if not isinstance(row, ListRow):
                    raise ValueError(f"{field}: must be a ListRow")
                _text(f"{field}.id", row.id, ROW_ID_MAX)
                _text(f"{field}.title", row.title, ROW_TITLE_MAX)
                _optional_text(f"{field}.description", row.description, ROW_DESCRIPTION_MAX)
                if row.id in ids:
                    raise ValueError(f"{field}.id: row ids must be unique across sections")
                ids.add(row.id)
            total += len(rows)
        if total > MAX_ROWS:
            raise ValueError(f"sections: at most {MAX_ROWS} rows in all sections, got {total}")

    def wire_body(self) -> dict[str, Any]:
        sections = []
        for section in self.sections:
            rows = []
            for row in section.rows:
                wire_row = {"id": row.id, "title": row.title}
                if row.description is not None:
                    wire_row["description"] = row.description
                rows.append(wire_row)
            wire_section: dict[str, Any] = {"rows": rows}
            if section.title is not None:
                wire_section = {"title": section.title, **wire_section}
            sections.append(wire_section)
        interactive = {
            "type": "list",
            **_header(self.header),
            "body": {"text": self.body},
            **_footer(self.footer),
            "action": {"button": self.button, "sections": sections},
        }
        return _envelope(self.to, "interactive", interactive)


@dataclass(frozen=True)
class MediaMessage:
    """An image, document, audio or video that Meta fetches from `link`."""

    to: str
    kind: MediaKind
    link: str
    caption: str | None = None
    filename: str | None = None

    def __post_init__(self) -> None:
        _recipient(self.to)
        if self.kind not in ("image", "document", "audio", "video"):
            raise ValueError("kind: must be image, document, audio or video")
        _link("link", self.link)
        if self.caption is not None and self.kind == "audio":
            raise ValueError("caption: audio has no caption")
        _optional_text("caption", self.caption, CAPTION_MAX)
        if self.filename is not None and self.kind != "document":
            raise ValueError("filename: only a document has a filename")
        _optional_text("filename", self.filename, FILENAME_MAX)

    def wire_body(self) -> dict[str, Any]:
        media: dict[str, Any] = {"link": self.link}
        if self.caption is not None:
            media["caption"] = self.caption
        if self.filename is not None:
            media["filename"] = self.filename
        return _envelope(self.to, self.kind, media)


OutboundMessage: TypeAlias = (
    TextMessage | TemplateMessage | InteractiveButtons | InteractiveList | MediaMessage
)
