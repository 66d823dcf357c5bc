"""The notifier that reaches people: email through SMTP, SMS through the gateway, sent in the
background so a slow mail server never holds a login, retried with backoff, counted by outcome,
and logged without the code."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Protocol

from aioprometheus.collectors import Counter, Registry

from mitra.auth.notifier import Notification, mask_email
from mitra.notifications.errors import DeliveryFailed
from mitra.phones import mask

log = logging.getLogger("mitra.notifications")


class EmailSender(Protocol):
    async def send(self, to: str, subject: str, text: str) -> None: ...


class SmsSender(Protocol):
    async def send(self, to: str, text: str) -> None: ...


class DeliveringNotifier:
    def __init__(
        self,
        email: EmailSender,
        sms: SmsSender,
        registry: Registry,
        *,
        max_attempts: int = 5,
        backoff_seconds: float = 1.0,
        queue_size: int = 10_000,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._email = email
        self._sms = sms
        self._max_attempts = max_attempts
        self._backoff = backoff_seconds
        self._sleep = sleep
        self._queue: asyncio.Queue[Notification] = asyncio.Queue(queue_size)
        self._worker: asyncio.Task[None] | None = None
        self.outcomes = Counter(
            "mitra_notifications_total",
            "email and SMS by channel and outcome (sent, retried, failed, dropped)",
            registry=registry,
        )

    async def send(self, notification: Notification) -> None:
        """Queue it; the request that asked goes on at once."""
        try:
            self._queue.put_nowait(notification)
        except asyncio.QueueFull:
            self._count(notification, "dropped")
            log.warning("notification queue full; dropped one", extra=_fields(notification))

    def start(self) -> None:
        self._worker = asyncio.get_running_loop().create_task(self._run(), name="notifications")

    async def stop(self, drain_seconds: float = 5.0) -> None:
        """Deliver what is queued for a little while, then stop."""
        if self._worker is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(drain_seconds):
                await self._queue.join()
        self._worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._worker

    async def _run(self) -> None:
        while True:
            notification = await self._queue.get()
            try:
                await self._deliver(notification)
            except Exception:
                log.exception("notification delivery failed unexpectedly")
            finally:
                self._queue.task_done()

    async def _deliver(self, notification: Notification) -> None:
        for attempt in range(1, self._max_attempts + 1):
            try:
                if notification.channel == "sms":
                    await self._sms.send(notification.to, notification.text())
                else:
                    await self._email.send(
                        notification.to, notification.subject, notification.text()
                    )
            except DeliveryFailed as exc:
                if not exc.retryable or attempt == self._max_attempts:
                    self._count(notification, "failed")
                    log.warning(
                        "notification not delivered: %s", exc.reason, extra=_fields(notification)
                    )
                    return
                self._count(notification, "retried")
                # Full jitter: many failures at once do not come back together.
                await self._sleep(random.random() * self._backoff * 2 ** (attempt - 1))  # noqa: S311
                continue
            self._count(notification, "sent")
            return

    def _count(self, notification: Notification, outcome: str) -> None:
        self.outcomes.inc({"channel": notification.channel, "outcome": outcome})


def _fields(notification: Notification) -> dict[str, object]:
    to = mask(notification.to) if notification.channel == "sms" else mask_email(notification.to)
    return {"fields": {"channel": notification.channel, "to": to, "purpose": notification.purpose}}
