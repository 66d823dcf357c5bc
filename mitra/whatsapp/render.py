"""A customer's WhatsApp message as a conversation message: the text members read, and `meta`
with what the channel adds (the message replied to, media to fetch, a location, contact cards).
"""

from __future__ import annotations

import hashlib
from typing import Any

MEDIA_TYPES = ("image", "document", "audio", "video", "sticker")
# Meta's own limit for a text message; a body is never cut shorter than what the customer sent.
MAX_BODY_CHARS = 4096


def client_msg_id(wamid: str) -> str:
    """A wamid is up to ~100 characters; the conversation's client ids are at most 64."""
    return "wa:" + hashlib.sha256(wamid.encode()).hexdigest()[:40]


def render(message: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    kind = str(message.get("type", "unknown"))
    meta: dict[str, Any] = {"wa_type": kind}
    context = message.get("context")
    if isinstance(context, dict) and context.get("id"):
        meta["reply_to"] = str(context["id"])
    body = _body(kind, message, meta)
    # PostgreSQL refuses NUL in text; the customer cannot be asked to resend without it.
    body = body.replace("\x00", "\ufffd")[:MAX_BODY_CHARS] or f"[{kind}]"
    return body, meta


def _body(kind: str, message: dict[str, Any], meta: dict[str, Any]) -> str:  # noqa: PLR0911 - one return per message type reads best
    part = message.get(kind)
    part = part if isinstance(part, dict) else {}
    if kind == "text":
        return str(part.get("body", ""))
    if kind == "interactive":
        reply_type = str(part.get("type", ""))
        reply = part.get(reply_type)
        reply = reply if isinstance(reply, dict) else {}
        meta["reply"] = {"type": reply_type, "id": reply.get("id"), "title": reply.get("title")}
        text = str(reply.get("title", ""))
        if reply.get("description"):
            text += f" — {reply['description']}"
        return text
    if kind == "button":  # a template's quick-reply button
        meta["reply"] = {"type": "button", "payload": part.get("payload")}
        return str(part.get("text", ""))
    if kind == "location":
        meta["location"] = {
            key: part.get(key) for key in ("latitude", "longitude", "name", "address", "url")
        }
        place = ", ".join(str(part[key]) for key in ("name", "address") if part.get(key))
        return "📍 " + (place or f"{part.get('latitude')}, {part.get('longitude')}")
    if kind == "contacts":
        cards = [_card(card) for card in message.get("contacts", []) if isinstance(card, dict)]
        meta["contacts"] = cards
        return "👤 " + "; ".join(
            f"{card['name']} {', '.join(card['phones'])}".strip() for card in cards
        )
    if kind in MEDIA_TYPES:
        meta["media"] = {
            "kind": kind,
            "id": part.get("id"),
            "mime_type": part.get("mime_type"),
            "sha256": part.get("sha256"),
            "caption": part.get("caption"),
            "filename": part.get("filename"),
        }
        return str(part.get("caption") or part.get("filename") or f"[{kind}]")
    if kind == "reaction":
        meta["reaction"] = {"message_id": part.get("message_id"), "emoji": part.get("emoji")}
        return f"reacted {part['emoji']}" if part.get("emoji") else "removed a reaction"
    errors = message.get("errors")
    if isinstance(errors, list):
        meta["errors"] = [
            {"code": e.get("code"), "title": e.get("title")} for e in errors if isinstance(e, dict)
        ]
    return f"[{kind} message: not shown here]"


def _card(card: dict[str, Any]) -> dict[str, Any]:
    name = card.get("name")
    name = name if isinstance(name, dict) else {}
    phones = [
        str(phone.get("phone") or phone.get("wa_id"))
        for phone in card.get("phones", [])
        if isinstance(phone, dict) and (phone.get("phone") or phone.get("wa_id"))
    ]
    return {
        "name": str(name.get("formatted_name") or name.get("first_name") or ""),
        "phones": phones,
    }
