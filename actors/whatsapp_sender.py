"""The `whatsapp-outbound` consumer group: members' messages to customers, one POST each.

Events are keyed by conversation, so a conversation's messages leave in seq order. Every POST is
recorded before it leaves and after it is answered (`SendLedger`); a redelivered event whose
POST was in flight when an instance died is reported `unknown` and never sent again, because the
Cloud API has no idempotency key and a second POST would reach the customer twice. Refusals Meta
says are temporary (429, 5xx, 130429) are retried with full-jitter backoff, paced per business
number; the others fail the message with Meta's code, which members see as a status frame.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from mitra.db import utcnow
from mitra.errors import NotFound
from mitra.whatsapp.graph import GraphClient, GraphError
from mitra.whatsapp.ledger import Claim, SendLedger
from mitra.whatsapp.metrics import WhatsAppMetrics
from mitra.whatsapp.outbound import outbound_message
from mitra.whatsapp.pacing import Backoff, SendPacer
from mitra.whatsapp.setup import WhatsAppSetup
from streams.base import RetryPolicy, Streams, Subscription
from streams.envelope import Event
from streams.topics import WHATSAPP_OUTBOUND

log = logging.getLogger("mitra.whatsapp.sender")

GROUP = "whatsapp-outbound"


class WhatsAppSender:
    def __init__(
        self,
        streams: Streams,
        *,
        setup: WhatsAppSetup,
        ledger: SendLedger,
        graph: GraphClient,
        pacer: SendPacer,
        metrics: WhatsAppMetrics,
        backoff: Backoff | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._streams = streams
        self._setup = setup
        self._ledger = ledger
        self._graph = graph
        self._pacer = pacer
        self._metrics = metrics
        self._backoff = backoff or Backoff()
        self._sleep = sleep
        self._subscription: Subscription | None = None

    async def start(self) -> None:
        self._subscription = await self._streams.subscribe(
            [WHATSAPP_OUTBOUND.name],
            GROUP,
            self.handle,
            retry=RetryPolicy(max_attempts=8, initial_backoff=0.2),
        )

    async def stop(self) -> None:
        if self._subscription is not None:
            await self._subscription.stop()

    def _share_of_the_topic(self) -> float:
        """This instance's part of the senders: its partitions of `whatsapp.outbound`."""
        if self._subscription is None:
            return 1.0
        mine = sum(
            1 for topic, _ in self._subscription.assignment() if topic == WHATSAPP_OUTBOUND.name
        )
        return mine / WHATSAPP_OUTBOUND.partitions if mine else 1.0

    async def handle(self, event: Event) -> None:
        # Partitions move between instances (a rebalance): the share is read afresh each time.
        self._pacer.share(self._share_of_the_topic())
        tenant_id = uuid.UUID(event.tenant_id)
        message = event.payload
        try:
            to_phone = await self._ledger.customer_phone(
                tenant_id, uuid.UUID(message["conversation_id"])
            )
        except NotFound:
            log.warning("WhatsApp message %s has no customer to go to", message["message_id"])
            return
        claim = await self._ledger.claim(tenant_id, message, to_phone)
        if claim.state in ("sent", "failed", "unknown"):
            return  # a redelivery of an event already handled
        outcome = await self._send(tenant_id, claim, message, to_phone)
        self._outcome(outcome)

    async def _send(
        self, tenant_id: uuid.UUID, claim: Claim, message: dict[str, Any], to_phone: str
    ) -> str:
        """POST the message until Meta takes it or refuses it for good; returns the outcome."""
        ledger = self._ledger
        if claim.state == "posting":
            # This event's POST was in flight when the instance handling it stopped.
            await ledger.unknown(tenant_id, claim.send_id)
            return "unknown"
        number = await self._setup.number(tenant_id)
        if number is None:
            await ledger.failed(tenant_id, claim.send_id, None, "WhatsApp is not set up")
            return "failed"
        try:
            outbound = outbound_message(to_phone, str(message["body"]), message.get("meta"))
        except ValueError as exc:
            await ledger.failed(tenant_id, claim.send_id, None, str(exc))
            return "failed"
        attempt = claim.attempts
        while True:
            attempt += 1
            if await self._pacer.wait(number.phone_number_id):
                self._metrics.pacing.inc({})
            await ledger.posting(tenant_id, claim.send_id, attempt)
            try:
                wamid = await self._graph.send(
                    number.phone_number_id, number.access_token, outbound
                )
            except GraphError as exc:
                if exc.outcome_unknown:
                    await ledger.unknown(tenant_id, claim.send_id)
                    return "unknown"
                delay = self._backoff.delay(attempt, exc.retry_after) if exc.retryable else None
                if delay is None:
                    log.warning("WhatsApp send failed: Meta error %s", exc.code)
                    await ledger.failed(tenant_id, claim.send_id, exc.code, exc.message)
                    return "failed"
                await ledger.retrying(tenant_id, claim.send_id)
                self._outcome("retried")
                await self._sleep(delay)
                continue
            await ledger.sent(tenant_id, claim.send_id, wamid)
            stored_at = datetime.fromisoformat(str(message["sent_at"]))
            self._metrics.send_latency.observe({}, max(0.0, (utcnow() - stored_at).total_seconds()))
            return "sent"

    def _outcome(self, outcome: str) -> None:
        self._metrics.sends.inc({"outcome": outcome})
