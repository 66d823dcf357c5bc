"""The `whatsapp-inbound` consumer group: customers' WhatsApp messages into their conversations.

Events arrive keyed by the customer's number, so one customer's messages are applied in order,
one at a time. Each is de-duplicated by its wamid (Meta redelivers): first against what is
stored, then by the conversation actor's recent client ids, and last by the unique index on
`messages.external_id`. A message goes through the `ChatRouter` like any other, so it is
numbered by the conversation's actor wherever that lives and reaches members' sockets live.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from actors.chat_router import ChatRouter
from actors.conversation import SendMessage
from mitra.errors import InvalidInput, MitraError, Unavailable
from mitra.whatsapp.inbox import WhatsAppInbox, wa_phone
from mitra.whatsapp.ledger import IN_FLIGHT, SendLedger
from mitra.whatsapp.metrics import WhatsAppMetrics
from mitra.whatsapp.render import client_msg_id, render
from mitra.whatsapp.setup import WhatsAppSetup
from mitra.whatsapp.webhook import InboundItem
from mitra.whatsapp.window import WA_TIMESTAMP
from streams.base import RetryPolicy, Streams, Subscription
from streams.envelope import Event
from streams.topics import WHATSAPP_INBOUND

log = logging.getLogger("mitra.whatsapp.inbound")

GROUP = "whatsapp-inbound"
CHANNEL = "whatsapp"
# Meta can report a message `sent` before its answer to the POST is recorded. Such a status is
# tried again, with these pauses, while the send to that customer still awaits its answer: the
# partition waits only on a race that is really under way, and not longer than the POST's own
# timeout. The offset is not committed meanwhile, so a crash loses nothing.
EARLY_STATUS_PAUSES = (0.05, 0.1, 0.2, 0.4, 0.8, *(1.0,) * 10)


class WhatsAppInboundConsumer:
    def __init__(
        self,
        streams: Streams,
        *,
        setup: WhatsAppSetup,
        inbox: WhatsAppInbox,
        router: ChatRouter,
        ledger: SendLedger,
        metrics: WhatsAppMetrics,
    ) -> None:
        self._streams = streams
        self._setup = setup
        self._inbox = inbox
        self._router = router
        self._ledger = ledger
        self._metrics = metrics
        self._subscription: Subscription | None = None

    async def start(self) -> None:
        self._subscription = await self._streams.subscribe(
            [WHATSAPP_INBOUND.name],
            GROUP,
            self.handle,
            # A database or an owner that is briefly away is retried; bad data is not.
            retry=RetryPolicy(max_attempts=8, initial_backoff=0.2, give_up_on=(InvalidInput,)),
        )

    async def stop(self) -> None:
        if self._subscription is not None:
            await self._subscription.stop()

    async def handle(self, event: Event) -> None:
        item = InboundItem.from_payload(event.payload)
        tenant_id = uuid.UUID(event.tenant_id)
        if item.kind == "status":
            await self._status(tenant_id, item)
            return
        number = await self._setup.number(tenant_id)
        if number is None:
            # The integration was removed after the webhook was accepted.
            self._count("no_integration")
            return
        wamid = str(item.data["id"])
        if await self._inbox.already_stored(tenant_id, wamid):
            self._count("duplicate")
            return
        phone = wa_phone(item.wa_id)
        if phone is None:
            # Trying again cannot make it a number: dropped now, so the partition moves on.
            self._count("bad_number")
            log.warning("WhatsApp message %s dropped: its sender is not a valid phone number",
                        wamid)  # fmt: skip
            return
        destination = await self._inbox.destination(
            tenant_id, phone, item.profile_name, number.default_agent_id
        )
        body, meta = render(item.data)
        meta[WA_TIMESTAMP] = item.timestamp
        message = SendMessage(
            sender_id=None,
            client_msg_id=client_msg_id(wamid),
            body=body,
            channel=CHANNEL,
            direction="inbound",
            sender_type="customer",
            external_id=wamid,
            meta=meta,
        )
        try:
            await self._router.send(tenant_id, destination.conversation_id, message)
        except Unavailable:
            raise  # the stream retries: nothing was stored
        except MitraError as exc:
            self._count("refused")
            log.warning("WhatsApp message of customer %s refused: %s", destination.customer_id,
                        exc.code)  # fmt: skip
            return
        self._count("stored")

    async def _status(self, tenant_id: uuid.UUID, item: InboundItem) -> None:
        errors = item.data.get("errors")
        error = errors[0] if isinstance(errors, list) and errors else None
        wamid, status = str(item.data["id"]), str(item.data["status"])
        outcome = await self._ledger.apply_status(tenant_id, wamid, status, error, item.wa_id)
        if outcome == IN_FLIGHT:
            self._metrics.statuses.inc({"status": status, "outcome": "early"})
            for pause in EARLY_STATUS_PAUSES:
                await asyncio.sleep(pause)
                outcome = await self._ledger.apply_status(
                    tenant_id, wamid, status, error, item.wa_id
                )
                if outcome != IN_FLIGHT:
                    break
        self._metrics.statuses.inc({"status": status, "outcome": outcome})

    def _count(self, outcome: str) -> None:
        self._metrics.inbound.inc({"outcome": outcome})
