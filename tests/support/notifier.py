"""A notifier that keeps what it sent, so tests can read the codes a person would receive."""

from __future__ import annotations

from mitra.auth import Notification


class RecordingNotifier:
    """Stands in for email and SMS, which cannot be reached from the tests."""

    def __init__(self) -> None:
        self.sent: list[Notification] = []

    async def send(self, notification: Notification) -> None:
        self.sent.append(notification)

    def last_secret(self, purpose: str, to: str | None = None) -> str:
        for notification in reversed(self.sent):
            if notification.purpose == purpose and (to is None or notification.to == to):
                assert notification.secret is not None
                return notification.secret
        raise AssertionError(f"no {purpose} notification sent to {to}")
