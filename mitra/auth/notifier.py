"""Email and SMS go through a notifier; the default writes to the log."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal, Protocol

from mitra.phones import mask

log = logging.getLogger("mitra.notifier")


@dataclass(frozen=True)
class Notification:
    """One message to a person. `secret` (a code or token) is kept apart so it can be redacted."""

    channel: Literal["email", "sms"]
    to: str
    subject: str
    body: str
    secret: str | None = None
    purpose: str = ""

    def text(self) -> str:
        """The body the person reads, with the secret in its place (`{code}` or `{token}`)."""
        if self.secret is None:
            return self.body
        return self.body.replace("{code}", self.secret).replace("{token}", self.secret)

    def __repr__(self) -> str:  # a stray log line must not carry the code
        return f"Notification(channel={self.channel!r}, purpose={self.purpose!r})"


class Notifier(Protocol):
    async def send(self, notification: Notification) -> None: ...


class LogNotifier:
    """Writes notifications to the log; never writes a secret in production mode."""

    def __init__(self, *, production: bool) -> None:
        self._production = production

    async def send(self, notification: Notification) -> None:
        recipient = (
            mask(notification.to) if notification.channel == "sms" else mask_email(notification.to)
        )
        fields: dict[str, object] = {
            "channel": notification.channel,
            "to": recipient,
            "purpose": notification.purpose,
            "subject": notification.subject,
        }
        if not self._production and notification.secret is not None:
            fields["secret"] = notification.secret
        log.info("notification sent", extra={"fields": fields})


def mask_email(address: str) -> str:
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}"
