"""The payment saga actor: one per live payment (virtual, like conversations), the single place
where a payment's steps are taken on this instance.

Each step is recorded in the database (`PaymentStore`) before it is acted on, and each status
change is conditional on the status it leaves, so a restart resumes from the last recorded step
and a step taken twice (two instances, a redelivered webhook, a poll racing a webhook) is taken
once. The gateways' SDKs block: they run here, on the actor's thread, never on the event loop.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from actors.pool import Activation
from actors.runtime import BridgedActor
from mitra.db import utcnow
from mitra.errors import MitraError, NotFound, Unavailable
from mitra.integrations import Credentials, IntegrationService
from mitra.payments import saga
from mitra.payments.gateway import (
    Gateway,
    GatewayError,
    GatewayRefused,
    Observed,
    from_minor,
    to_minor,
)
from mitra.payments.store import PaymentState, PaymentStore
from mitra.payments.webhooks import GatewayEvent
from mitra.settings import PaymentsSettings

log = logging.getLogger("mitra.payments.saga")

PaymentKey = tuple[uuid.UUID, uuid.UUID]
"""(tenant_id, payment_id)."""

GatewayFactory = Callable[[Credentials], Gateway]
Tell = Callable[[PaymentState, str, str], Coroutine[Any, Any, uuid.UUID | None]]
"""Puts a message (body, client message id) in the customer's conversation; its id or None."""


@dataclass(frozen=True)
class Place:
    """Create the order or link at the gateway (once); answers the payment."""


@dataclass(frozen=True)
class Verified:
    """Razorpay Checkout's verified callback: the customer authorised `payment_ref`."""

    payment_ref: str


@dataclass(frozen=True)
class Apply:
    """A verified gateway event for this payment, from `payments.events`."""

    event: GatewayEvent


@dataclass(frozen=True)
class Resume:
    """Take whatever step is due (after a restart, or an expiry)."""


@dataclass(frozen=True)
class Poll:
    """Heard nothing for a while: ask the gateway where the payment stands."""


@dataclass(frozen=True)
class Refund:
    refund_id: uuid.UUID
    amount: Decimal
    reason: str


@dataclass(frozen=True)
class SagaDeps:
    """What every saga actor is given (one instance shared by the pool)."""

    store: PaymentStore
    integrations: IntegrationService
    gateways: dict[str, GatewayFactory]
    tell_customer: Tell
    settings: PaymentsSettings
    io_timeout: float
    observe: Callable[[str, str, float, bool], None] | None = None
    """Called with (gateway, operation, seconds, ok) after each SDK call: the metrics."""
    progress: Callable[[PaymentState], Coroutine[Any, Any, None]] | None = None
    """Tells the people concerned that the saga moved (their sockets)."""


class PaymentSagaActor(BridgedActor):
    kind = "payment"

    def __init__(self, activation: Activation[PaymentKey], deps: SagaDeps) -> None:
        super().__init__(runtime=activation.runtime, start_after=activation.predecessor)
        self.tenant_id, self.payment_id = activation.key
        self._store = deps.store
        self._integrations = deps.integrations
        self._gateways = deps.gateways
        self._tell_customer = deps.tell_customer
        self._settings = deps.settings
        self._io_timeout = deps.io_timeout
        self._observe = deps.observe
        self._progress = deps.progress
        self._paused = False

    # ---- messages ----------------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Place):
            return self._place()
        if isinstance(message, Apply):
            self._apply(message.event)
            return self._drive()
        if isinstance(message, Verified):
            self._advance(
                saga.AUTHORISED,
                {"source": "checkout_callback", "gateway_payment_id": message.payment_ref},
                gateway_payment_id=message.payment_ref,
            )
            return self._drive()
        if isinstance(message, Resume):
            self._retry_refunds()
            return self._drive()
        if isinstance(message, Poll):
            self._poll()
            self._retry_refunds()
            return self._drive()
        if isinstance(message, Refund):
            return self._refund(message)
        raise TypeError(f"payment saga got {type(message).__name__}")

    # ---- steps -------------------------------------------------------------------------------

    def _place(self) -> PaymentState:
        state = self._state()
        if state.status != saga.CREATED:
            # Placed already: a retry gets the same order, and a link message a crash or a
            # failed send left unsent goes out now.
            return self._drive()
        charge = self._io(self._store.charge(self.tenant_id, self.payment_id))
        self._io(
            self._store.note(
                self.tenant_id, self.payment_id, "order_requested", {"kind": state.kind}
            )
        )
        gateway = self._gateway(state.gateway)
        try:
            placed = self._timed(
                state.gateway,
                "place",
                lambda: (
                    gateway.place_order(charge)
                    if state.kind == "order"
                    else gateway.place_link(charge)
                ),
            )
        except GatewayError as exc:
            if exc.retryable:
                raise Unavailable(f"{state.gateway} is unavailable; try again") from None
            self._advance(saga.FAILED, {"error": str(exc)})
            raise GatewayRefused(str(exc)) from None
        checkout = {**state.checkout, **placed.checkout}
        self._advance(
            saga.ORDER_PLACED,
            {"gateway_order_id": placed.order_id},
            gateway_order_id=placed.order_id,
            checkout=checkout,
        )
        return self._drive()  # the link message, when asked for

    def _link_unsent(self, state: PaymentState) -> bool:
        """A placed link the customer was to get in their conversation and has not (the step
        log tells, so a stop between `order_placed` and `link_sent` sends it on resume)."""
        if state.status != saga.ORDER_PLACED or state.kind != "link":
            return False
        if not state.checkout.get("send_to_conversation"):
            return False
        sent: bool = self._io(self._store.has_step(self.tenant_id, self.payment_id, "link_sent"))
        return not sent

    def _send_link(self, state: PaymentState) -> None:
        url = state.checkout.get("url")
        body = (
            f"Premium of {state.currency} {state.amount} for your policy is due. "
            f"Pay securely here: {url} (valid until {state.expires_at:%d %b %Y %H:%M} UTC)"
        )
        self._io(self._store.note(self.tenant_id, self.payment_id, "link_sending", {}))
        conversation_id = self._io(self._tell_customer(state, body, f"payment:{state.id}:link"))
        self._io(
            self._store.note(
                self.tenant_id, self.payment_id, "link_sent",
                {"conversation_id": str(conversation_id) if conversation_id else None},
            )
        )  # fmt: skip

    def _apply(self, event: GatewayEvent) -> None:
        state = self._state()
        detail = {"provider_event_id": event.event_id, "event_type": event.event_type}
        if event.kind in ("refund_processed", "refund_failed"):
            self._io(self._store.apply_refund_event(self.tenant_id, event))
            return
        self._io(self._store.heard(self.tenant_id, self.payment_id))
        if event.kind == "authorised":
            self._advance(saga.AUTHORISED, detail, gateway_payment_id=event.payment_ref)
        elif event.kind == "failed":
            self._advance(saga.FAILED, detail)
        elif event.kind == "captured":
            expected = to_minor(state.amount)
            currency = (event.currency or "").upper()
            if event.amount_minor != expected or currency != state.currency.upper():
                flag = (
                    f"captured {event.amount_minor} {currency or '?'} for an order of "
                    f"{expected} {state.currency}: not credited"
                )
                log.warning("payment %s: %s", self.payment_id, flag)
                # What was taken, in our currency, so staff can refund it; another currency
                # is refunded at the gateway (an amount here would be in the wrong currency).
                held = (
                    from_minor(event.amount_minor)
                    if event.amount_minor is not None and currency == state.currency.upper()
                    else None
                )
                self._advance(saga.FLAGGED, {**detail, "flag": flag}, flag=flag,
                              gateway_payment_id=event.payment_ref,
                              captured_amount=held)  # fmt: skip
            else:
                self._advance(
                    saga.CAPTURED, {**detail, "gateway_payment_id": event.payment_ref},
                    gateway_payment_id=event.payment_ref, captured_amount=state.amount,
                )  # fmt: skip

    def _drive(self) -> PaymentState:
        """Take every step that is due now, each recorded before the next."""
        for _ in range(8):  # every step moves forward; eight is more than the longest path
            state = self._state()
            if state.status == saga.CAPTURED:
                pause = self._settings.test_pause_after_captured_seconds
                if pause and not self._paused:
                    self._paused = True
                    log.warning("payment %s: test pause of %gs before crediting", state.id, pause)
                    time.sleep(pause)
                    continue
                moved_to = self._io(self._store.credit(self.tenant_id, self.payment_id))
                if moved_to == saga.FLAGGED:
                    # The policy takes no premiums any more, or another payment paid this one.
                    log.warning("payment %s: captured but not credited: flagged", state.id)
                if moved_to is not None:
                    self._moved()
            elif state.status == saga.POLICY_CREDITED:
                self._receipt(state)
            elif state.status == saga.EXPIRED:
                self._compensate(state)
            elif state.status in saga.WAITING and utcnow() >= state.expires_at:
                if state.gateway_order_id and self._poll() in ("captured", "flagged"):
                    continue
                self._advance(saga.EXPIRED, {"expires_at": state.expires_at.isoformat()})
            elif self._link_unsent(state):
                self._send_link(state)
            else:
                return state
        return self._state()

    def _receipt(self, state: PaymentState) -> None:
        body = (
            f"Payment received: {state.currency} {state.captured_amount} "
            f"(ref {state.gateway_payment_id}). Thank you! "
            + (
                f"Your next premium is due on {state.next_due_date:%d %b %Y}."
                if state.next_due_date
                else ""
            )
        )
        conversation_id = self._io(self._tell_customer(state, body, f"payment:{state.id}:receipt"))
        self._advance(
            saga.RECEIPT_SENT,
            {"conversation_id": str(conversation_id) if conversation_id else None},
            conversation_id=conversation_id,
        )

    def _compensate(self, state: PaymentState) -> None:
        cancelled: bool | str = False
        if state.gateway_order_id:
            try:
                gateway = self._gateway(state.gateway)
                order_id = state.gateway_order_id
                cancelled = self._timed(
                    state.gateway, "cancel", lambda: gateway.cancel(state.kind, order_id)
                )
            except (GatewayError, NotFound) as exc:
                cancelled = f"not cancelled: {exc}"
        body = (
            f"The payment of {state.currency} {state.amount} for your policy was not completed "
            "in time and has been cancelled. Your agent can send you a new link."
        )
        conversation_id = self._io(self._tell_customer(state, body, f"payment:{state.id}:expired"))
        self._advance(
            saga.COMPENSATED,
            {
                "cancelled": cancelled,
                "conversation_id": str(conversation_id) if conversation_id else None,
            },
        )

    def _poll(self) -> str | None:
        """Ask the gateway (the SDK's fetch) and apply what it says; the state it reported."""
        state = self._state()
        if not state.gateway_order_id or state.status not in saga.WAITING | {saga.EXPIRED}:
            return None
        try:
            gateway = self._gateway(state.gateway)
            order_id = state.gateway_order_id
            seen: Observed = self._timed(
                state.gateway, "fetch", lambda: gateway.observe(state.kind, order_id)
            )
        except (GatewayError, NotFound) as exc:
            log.warning("payment %s: poll failed: %s", self.payment_id, exc)
            return None
        self._io(self._store.note(self.tenant_id, self.payment_id, "polled", {"seen": seen.state}))
        if seen.state in ("captured", "failed", "authorised"):
            self._apply(
                GatewayEvent(
                    state.gateway, f"poll:{uuid.uuid4()}", "poll", seen.state,
                    payment_id=state.id, order_ref=state.gateway_order_id,
                    payment_ref=seen.payment_ref, amount_minor=seen.amount_minor,
                    currency=seen.currency,
                )
            )  # fmt: skip
        else:
            self._io(self._store.heard(self.tenant_id, self.payment_id))
        return self._state().status

    def _refund(self, message: Refund) -> dict[str, Any]:
        """Ask the gateway for a refund set aside in the store. A refund the gateway could not
        answer stays `requested` and is asked again (resume, poller) with the same idempotency
        key, the refund's id, so the gateway makes it once however often it is asked."""
        status, gateway_refund_id = self._io(
            self._store.refund_state(self.tenant_id, message.refund_id)
        )
        if status != "requested":  # answered already (a retry raced the first request)
            return {"refund_id": message.refund_id, "status": status,
                    "gateway_refund_id": gateway_refund_id}  # fmt: skip
        state = self._state()
        gateway = self._gateway(state.gateway)
        assert state.gateway_payment_id is not None
        payment_ref = state.gateway_payment_id
        try:
            refunded = self._timed(
                state.gateway,
                "refund",
                lambda: gateway.refund(
                    payment_ref, to_minor(message.amount), str(message.refund_id), message.reason
                ),
            )
        except GatewayError as exc:
            if exc.retryable:
                log.warning(
                    "payment %s: refund %s not answered, asked again later: %s",
                    self.payment_id, message.refund_id, exc,
                )  # fmt: skip
                return {"refund_id": message.refund_id, "status": "requested",
                        "gateway_refund_id": None}  # fmt: skip
            self._io(
                self._store.refund_result(
                    self.tenant_id, message.refund_id, "failed", None, str(exc)
                )
            )
            raise GatewayRefused(str(exc)) from None
        self._io(
            self._store.refund_result(
                self.tenant_id, message.refund_id, refunded.status, refunded.refund_id
            )
        )
        return {
            "refund_id": message.refund_id,
            "status": refunded.status,
            "gateway_refund_id": refunded.refund_id,
        }

    def _retry_refunds(self) -> None:
        """Ask again for refunds a stop interrupted: the gateway's idempotency key (the
        refund's id) makes a second request the same refund."""
        for refund_id, amount, reason in self._io(
            self._store.open_refunds(self.tenant_id, self.payment_id)
        ):
            try:
                self._refund(Refund(refund_id, amount, reason))
            except MitraError as exc:
                log.warning("payment %s: refund %s still open: %s", self.payment_id, refund_id, exc)

    # ---- plumbing ----------------------------------------------------------------------------

    def _advance(self, to: str, detail: dict[str, Any], **values: Any) -> bool:
        moved: bool = self._io(
            self._store.advance(self.tenant_id, self.payment_id, to, detail, **values)
        )
        if moved:
            self._moved()
        return moved

    def _moved(self) -> None:
        if self._progress is not None:
            self._io(self._progress(self._state()))

    def _state(self) -> PaymentState:
        state: PaymentState = self._io(self._store.load(self.tenant_id, self.payment_id))
        return state

    def _gateway(self, name: str) -> Gateway:
        credentials = self._io(self._integrations.credentials(self.tenant_id, name))
        if credentials is None:
            raise NotFound(f"no {name} integration is set up")
        return self._gateways[name](credentials)

    def _timed(self, gateway: str, operation: str, call: Callable[[], Any]) -> Any:
        started = time.monotonic()
        ok = False
        try:
            result = call()
            ok = True
            return result
        finally:
            if self._observe is not None:
                self._observe(gateway, operation, time.monotonic() - started, ok)

    def _io(self, coro: Coroutine[Any, Any, Any]) -> Any:
        try:
            return self.run_on_loop(coro, self._io_timeout)
        except MitraError:
            raise
