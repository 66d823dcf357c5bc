"""Meta's webhook: the signature over the raw bytes, then the body split into what it carries.

Meta signs the exact bytes it sends (`X-Hub-Signature-256: sha256=<hex>`, HMAC-SHA256 with the
app secret). The check runs on those bytes before anything is parsed: a body re-serialised by
anyone (emoji escaped as `\\u` sequences, keys reordered) is a different body and fails.

One POST may batch several entries, changes, messages and statuses. Each message and each status
becomes its own item keyed by the customer's number, so a consumer keyed per sender applies one
customer's messages in order whatever else shares the body.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

SIGNATURE_HEADER = "X-Hub-Signature-256"
_PREFIX = "sha256="


def signature_valid(raw_body: bytes, header: str | None, app_secret: str) -> bool:
    """Whether `header` is Meta's signature of exactly these bytes (constant-time compare)."""
    if not header or not header.startswith(_PREFIX):
        return False
    expected = hmac.new(app_secret.encode(), raw_body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header[len(_PREFIX) :].strip().lower())


def sign(raw_body: bytes, app_secret: str) -> str:
    """The header value Meta would send for these bytes (tests and tools sign with it)."""
    return _PREFIX + hmac.new(app_secret.encode(), raw_body, hashlib.sha256).hexdigest()


class WebhookUnreadable(ValueError):
    """A signed body that is not the JSON shape Meta documents."""


@dataclass(frozen=True)
class InboundItem:
    """A customer's message (`message`) or the status of one sent to them (`status`), with
    the business number it concerns and the sender's profile name when Meta gave one."""

    kind: str  # "message" | "status"
    phone_number_id: str
    wa_id: str
    data: dict[str, Any]
    profile_name: str | None = None

    @property
    def timestamp(self) -> int:
        try:
            return int(self.data.get("timestamp", 0))
        except (TypeError, ValueError):
            return 0

    def as_payload(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "phone_number_id": self.phone_number_id,
            "wa_id": self.wa_id,
            "profile_name": self.profile_name,
            "data": self.data,
        }

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> InboundItem:
        return cls(
            kind=payload["kind"],
            phone_number_id=payload["phone_number_id"],
            wa_id=payload["wa_id"],
            data=payload["data"],
            profile_name=payload.get("profile_name"),
        )


@dataclass
class WebhookBody:
    items: list[InboundItem] = field(default_factory=list)
    # Value-level errors Meta reports (e.g. 130429 throughput reached): logged and counted.
    errors: list[dict[str, Any]] = field(default_factory=list)
    # The kind ("message", "status") of each item left out for lacking what identifies it. They
    # do not refuse the body: a 4xx would make Meta redeliver all of it, the good items with it,
    # and the bad one would fail again every time.
    malformed: list[str] = field(default_factory=list)


def parse_webhook(raw_body: bytes) -> WebhookBody:
    """Split a verified body into items, messages of one sender ordered by their timestamp."""
    try:
        document = orjson.loads(raw_body)
    except orjson.JSONDecodeError as exc:
        raise WebhookUnreadable(f"not JSON: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("entry"), list):
        raise WebhookUnreadable("expected an object with an `entry` list")
    body = WebhookBody()
    for entry in document["entry"]:
        for change in _dicts(entry.get("changes") if isinstance(entry, dict) else None):
            if change.get("field") != "messages":
                continue
            value = change.get("value")
            if isinstance(value, dict):
                _read_value(value, body)
    # Meta may deliver one sender's messages out of order within a batch; their timestamps
    # (seconds) order them, and the sort is stable for messages of the same second.
    body.items.sort(key=lambda item: (item.kind != "message", item.timestamp))
    return body


def _read_value(value: dict[str, Any], body: WebhookBody) -> None:
    metadata = value.get("metadata")
    phone_number_id = str(metadata.get("phone_number_id", "")) if isinstance(metadata, dict) else ""
    names = {
        str(contact.get("wa_id")): (contact.get("profile") or {}).get("name")
        for contact in _dicts(value.get("contacts"))
    }
    for message in _dicts(value.get("messages")):
        sender = str(message.get("from") or "")
        if not sender or not message.get("id"):
            body.malformed.append("message")
            continue
        body.items.append(
            InboundItem("message", phone_number_id, sender, message, names.get(sender))
        )
    for status in _dicts(value.get("statuses")):
        recipient = str(status.get("recipient_id") or "")
        if not status.get("id") or not status.get("status"):
            body.malformed.append("status")
            continue
        body.items.append(InboundItem("status", phone_number_id, recipient, status))
    body.errors.extend(_dicts(value.get("errors")))


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def sent_at(item: InboundItem) -> datetime:
    """When the customer sent it, by Meta's clock; now when Meta gave no usable timestamp."""
    if item.timestamp > 0:
        return datetime.fromtimestamp(item.timestamp, UTC)
    return datetime.now(UTC)
