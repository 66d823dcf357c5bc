"""What a stored member's message becomes on WhatsApp: text, or the template, buttons, list or
media its `meta` describes. Built the same way when the request is checked and when it is sent,
so a message that passed the check is never refused by Meta's limits later."""

from __future__ import annotations

from typing import Any

from mitra.whatsapp.graph_messages import (
    InteractiveButtons,
    InteractiveList,
    ListRow,
    ListSection,
    MediaMessage,
    OutboundMessage,
    ReplyButton,
    TemplateMedia,
    TemplateMessage,
    TextMessage,
)

TEMPLATE = "template"
"""`meta["template"]`: {name, language, parameters, header_parameters?, header_media?}. The one
kind Meta takes outside the customer-service window."""
SEND = "send"
"""`meta["send"]`: {type: buttons | list | media, ...} for the other rich kinds."""


def outbound_message(to: str, body: str, meta: dict[str, Any] | None) -> OutboundMessage:
    """Raises ValueError naming the field Meta's limits refuse."""
    meta = meta or {}
    template = meta.get(TEMPLATE)
    if isinstance(template, dict):
        media = template.get("header_media")
        return TemplateMessage(
            to=to,
            name=str(template["name"]),
            language=str(template["language"]),
            body_parameters=tuple(str(p) for p in template.get("parameters", ())),
            header_parameters=tuple(str(p) for p in template.get("header_parameters", ())),
            header_media=TemplateMedia(
                kind=media["kind"], link=str(media["link"]), filename=media.get("filename")
            )
            if isinstance(media, dict)
            else None,
        )
    spec = meta.get(SEND)
    if not isinstance(spec, dict):
        return TextMessage(to=to, body=body)
    kind = spec.get("type")
    if kind == "buttons":
        return InteractiveButtons(
            to=to,
            body=str(spec["body"]),
            buttons=tuple(ReplyButton(str(b["id"]), str(b["title"])) for b in spec["buttons"]),
            header=spec.get("header"),
            footer=spec.get("footer"),
        )
    if kind == "list":
        return InteractiveList(
            to=to,
            body=str(spec["body"]),
            button=str(spec["button"]),
            sections=tuple(
                ListSection(
                    rows=tuple(
                        ListRow(str(r["id"]), str(r["title"]), r.get("description"))
                        for r in section["rows"]
                    ),
                    title=section.get("title"),
                )
                for section in spec["sections"]
            ),
            header=spec.get("header"),
            footer=spec.get("footer"),
        )
    if kind == "media":
        return MediaMessage(
            to=to,
            kind=spec["kind"],
            link=str(spec["link"]),
            caption=spec.get("caption"),
            filename=spec.get("filename"),
        )
    raise ValueError(f"type: {kind!r} is not a kind of WhatsApp message")


def summary(meta: dict[str, Any]) -> str:
    """The text members read for a rich message in the conversation."""
    template = meta.get(TEMPLATE)
    if isinstance(template, dict):
        values = [*template.get("header_parameters", ()), *template.get("parameters", ())]
        media = template.get("header_media")
        if isinstance(media, dict):
            values.insert(0, str(media.get("filename") or f"[{media.get('kind')}]"))
        return f"[template {template['name']}] " + " | ".join(values)
    spec = meta.get(SEND) or {}
    if spec.get("type") == "buttons":
        titles = " | ".join(str(b["title"]) for b in spec["buttons"])
        return f"{spec['body']} [{titles}]"
    if spec.get("type") == "list":
        return f"{spec['body']} [{spec['button']}]"
    return str(spec.get("caption") or spec.get("filename") or f"[{spec.get('kind', 'media')}]")
