"""The loop-side entry to the payment sagas: their pool, the `payments-saga` consumer that hands
verified webhooks to them, the resume at start and the poller for sagas that heard nothing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Collection
from datetime import timedelta
from functools import partial
from typing import Any

import pykka
from sqlalchemy import select

from actors.chat_router import ChatRouter
from actors.conversation import AUTO_CHANNEL, SendMessage
from actors.payment_saga import (
    Apply,
    GatewayFactory,
    PaymentKey,
    PaymentSagaActor,
    Resume,
    SagaDeps,
)
from actors.payment_saga import Poll as PollMessage
from actors.pool import Activation, ActorPool
from actors.system import ActorSystem
from mitra.auth.principal import Principal
from mitra.chat import ConversationService
from mitra.db import Database, Scope, utcnow
from mitra.errors import InvalidInput
from mitra.integrations import IntegrationService
from mitra.models import Customer, User
from mitra.payments.store import TOPIC, PaymentState, PaymentStore
from mitra.payments.webhooks import GatewayEvent
from mitra.settings import PaymentsSettings
from streams.base import RetryPolicy, Streams, Subscription
from streams.envelope import Event

log = logging.getLogger("mitra.payments.sagas")

GROUP = "payments-saga"
Push = Callable[[uuid.UUID, Collection[uuid.UUID], dict[str, Any]], Awaitable[None]]
"""`UserFrames.send`: a frame to every open socket of those users, on every instance."""
_NO_SESSION = uuid.UUID(int=0)


class CustomerMessages:
    """Puts a saga's messages (link, receipt, notice) in the customer's conversation with
    their agent, sent as the agent; the AUTO channel takes it to WhatsApp when the customer
    writes from there (and to the app when Meta's 24-hour window has closed)."""

    def __init__(
        self,
        database: Database,
        conversations: ConversationService,
        router: ChatRouter,
        push: Push | None = None,
    ) -> None:
        self._db = database
        self._conversations = conversations
        self._router = router
        self._push = push

    async def progress(self, state: PaymentState) -> None:
        """The saga's new status to the sockets of the agent and the policyholder (best effort:
        the steps are in the database, and GET /api/v1/payments/{id} shows them)."""
        if self._push is None:
            return
        async with self._db.session(Scope.tenant(state.tenant_id)) as session:
            holder = await session.scalar(
                select(Customer.user_id).where(Customer.id == state.customer_id)
            )
        users = {state.agent_id, *([holder] if holder else [])}
        frame = {
            "type": "payment.status",
            "payment_id": str(state.id),
            "policy_id": str(state.policy_id),
            "gateway": state.gateway,
            "status": state.status,
        }
        try:
            await self._push(state.tenant_id, users, frame)
        except Exception:  # a frame is never worth failing a saga's step for
            log.warning("payment %s: progress frame not sent", state.id, exc_info=True)

    async def tell(self, state: PaymentState, body: str, client_msg_id: str) -> uuid.UUID | None:
        async with self._db.session(Scope.tenant(state.tenant_id)) as session:
            agent = await session.scalar(select(User).where(User.id == state.agent_id))
        if agent is None:
            return None
        principal = Principal(agent.id, state.tenant_id, agent.role, _NO_SESSION, agent.email)
        summary, _ = await self._conversations.open_with_customer(principal, state.customer_id)
        meta = {"payment_id": str(state.id), "payment_status": state.status}
        for channel in (AUTO_CHANNEL, "app"):
            message = SendMessage(agent.id, client_msg_id, body, channel=channel, meta=meta)
            try:
                await self._router.send(state.tenant_id, summary.id, message)
            except InvalidInput:
                if channel == "app":
                    raise
                continue  # outside WhatsApp's window: the app still shows it
            return summary.id
        return summary.id


class PaymentSagas:
    def __init__(
        self,
        system: ActorSystem,
        streams: Streams,
        *,
        store: PaymentStore,
        integrations: IntegrationService,
        gateways: dict[str, GatewayFactory],
        messages: CustomerMessages,
        settings: PaymentsSettings,
        io_timeout: float,
        observe: Callable[[str, str, float, bool], None] | None = None,
        counts: Callable[[dict[str, int]], None] | None = None,
    ) -> None:
        self._streams = streams
        self._counts = counts
        self._store = store
        self._settings = settings
        self.ask_timeout = settings.request_timeout_seconds * 3 + io_timeout
        deps = SagaDeps(
            store,
            integrations,
            gateways,
            messages.tell,
            settings,
            io_timeout,
            observe,
            progress=messages.progress,
        )
        self.pool: ActorPool[PaymentKey] = system.pool(
            "payment", partial(self._start, deps), idle_timeout_seconds=120.0
        )
        self._subscription: Subscription | None = None
        self._poller: asyncio.Task[None] | None = None

    @staticmethod
    def _start(deps: SagaDeps, activation: Activation[PaymentKey]) -> pykka.ActorRef[Any]:
        return PaymentSagaActor.start(activation, deps)

    async def ask(self, tenant_id: uuid.UUID, payment_id: uuid.UUID, message: Any) -> Any:
        return await self.pool.ask((tenant_id, payment_id), message, timeout=self.ask_timeout)

    async def start(self) -> None:
        self._subscription = await self._streams.subscribe(
            [TOPIC], GROUP, self.handle, retry=RetryPolicy(max_attempts=8, initial_backoff=0.2)
        )
        # Every saga a stop interrupted takes its next step again, from its last recorded one.
        for tenant_id, payment_id in await self._store.unfinished():
            self.pool.tell((tenant_id, payment_id), Resume())
        if self._counts is not None:
            self._counts(await self._store.count_by_status())
        self._poller = asyncio.get_running_loop().create_task(self._poll(), name="payment-poller")

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        if self._subscription is not None:
            await self._subscription.stop()

    async def handle(self, event: Event) -> None:
        if event.type != "payment.webhook":
            return  # the saga's own steps: for other consumers
        data = event.payload.get("event")
        if not isinstance(data, dict):
            return
        webhook = GatewayEvent.from_payload(data)
        payment_id = uuid.UUID(str(event.payload["payment_id"]))
        await self.ask(uuid.UUID(event.tenant_id), payment_id, Apply(webhook))

    async def poll_once(self) -> int:
        """Nudge every saga that heard nothing for `poll_after_seconds` or whose order expired."""
        cutoff = utcnow() - timedelta(seconds=self._settings.poll_after_seconds)
        due = await self._store.unfinished(heard_before=cutoff)
        for key in due:
            self.pool.tell(key, PollMessage())
        if self._counts is not None:
            self._counts(await self._store.count_by_status())
        return len(due)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._settings.poll_interval_seconds)
            try:
                await self.poll_once()
            except Exception:
                log.exception("the payment poller failed; it tries again next round")
