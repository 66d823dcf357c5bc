"""Stripe through its official SDK (`stripe.StripeClient`): PaymentIntents for Checkout,
Checkout Sessions as links, retrieves, refunds and the PaymentIntents list. Blocking."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import stripe

from mitra.integrations import Credentials
from mitra.payments.gateway import (
    Charge,
    GatewayError,
    Listed,
    Observation,
    Observed,
    Placed,
    Refunded,
    payment_id_in,
    to_minor,
)

_STATES: dict[str, Observation] = {
    "succeeded": "captured",
    "requires_capture": "authorised",
    "processing": "pending",
    "requires_payment_method": "pending",
    "requires_confirmation": "pending",
    "requires_action": "pending",
    "canceled": "expired",
}


class StripeGateway:
    name = "stripe"

    def __init__(
        self, credentials: Credentials, *, base_url: str, timeout: float, return_url: str
    ) -> None:
        self.publishable_key = str(credentials.config.get("publishable_key") or "")
        self._client = stripe.StripeClient(
            credentials.secrets["secret_key"],
            base_addresses={"api": base_url.rstrip("/")},
            http_client=stripe.RequestsClient(timeout=timeout),
            max_network_retries=0,
        )
        self._return_url = return_url

    def place_order(self, charge: Charge) -> Placed:
        intent = self._call(
            self._client.v1.payment_intents.create,
            params={
                "amount": to_minor(charge.amount),
                "currency": charge.currency.lower(),
                "metadata": charge.notes,
                "description": f"Premium of policy {charge.policy_number}",
                "automatic_payment_methods": {"enabled": True},
            },
            options={"idempotency_key": f"order-{charge.payment_id}"},
        )
        return Placed(
            str(intent.id),
            {"client_secret": intent.client_secret, "publishable_key": self.publishable_key},
        )

    def place_link(self, charge: Charge) -> Placed:
        session = self._call(
            self._client.v1.checkout.sessions.create,
            params={
                "mode": "payment",
                "line_items": [
                    {
                        "quantity": 1,
                        "price_data": {
                            "currency": charge.currency.lower(),
                            "unit_amount": to_minor(charge.amount),
                            "product_data": {"name": f"Premium of policy {charge.policy_number}"},
                        },
                    }
                ],
                "metadata": charge.notes,
                "payment_intent_data": {"metadata": charge.notes},
                "client_reference_id": str(charge.payment_id),
                "expires_at": _session_expiry(charge.expires_at),
                "success_url": self._return_url,
            },
            options={"idempotency_key": f"link-{charge.payment_id}"},
        )
        return Placed(str(session.id), {"url": session.url})

    def observe(self, kind: str, order_id: str) -> Observed:
        intent_id = order_id
        if kind == "link":
            session = self._call(self._client.v1.checkout.sessions.retrieve, order_id)
            if session.status == "expired":
                return Observed("expired")
            if not session.payment_intent:
                return Observed("pending")
            intent_id = str(session.payment_intent)
        intent = self._call(self._client.v1.payment_intents.retrieve, intent_id).to_dict()
        state = _STATES.get(str(intent.get("status")), "pending")
        if state == "pending" and intent.get("last_payment_error"):
            state = "failed"
        received = intent.get("amount_received") or intent.get("amount") or 0
        currency = str(intent.get("currency") or "").upper()
        return Observed(state, str(intent["id"]), int(received), currency)

    def cancel(self, kind: str, order_id: str) -> bool:
        if kind == "link":
            self._call(self._client.v1.checkout.sessions.expire, order_id)
        else:
            self._call(self._client.v1.payment_intents.cancel, order_id)
        return True

    def refund(
        self, payment_ref: str, amount_minor: int, idempotency_key: str, reason: str
    ) -> Refunded:
        refund = self._call(
            self._client.v1.refunds.create,
            params={
                "payment_intent": payment_ref,
                "amount": amount_minor,
                "metadata": {"reason": reason[:200]},
            },
            options={"idempotency_key": idempotency_key},
        )
        status = str(refund.status)
        done = {"succeeded": "processed", "failed": "failed", "canceled": "failed"}
        return Refunded(str(refund.id), done.get(status, "pending"))  # type: ignore[arg-type]

    def list_payments(self, start: datetime, end: datetime) -> list[Listed]:
        page = self._call(
            self._client.v1.payment_intents.list,
            params={
                "created": {"gte": int(start.timestamp()), "lte": int(end.timestamp())},
                "limit": 100,
            },
        )
        found = []
        try:
            for intent in page.auto_paging_iter():
                found.append(
                    Listed(
                        payment_ref=str(intent.id),
                        order_ref=str(intent.id),
                        state=_STATES.get(str(intent.status), "pending"),
                        amount_minor=int(intent.amount),
                        currency=str(intent.currency).upper(),
                        payment_id=payment_id_in(_plain(intent.to_dict().get("metadata"))),
                    )
                )
        except stripe.StripeError as exc:
            raise GatewayError(
                f"Stripe failed: {exc.user_message or exc}", retryable=True
            ) from None
        return found

    def _call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except (stripe.InvalidRequestError, stripe.AuthenticationError, stripe.CardError) as exc:
            raise GatewayError(
                f"Stripe refused: {exc.user_message or exc}", retryable=False
            ) from None
        except stripe.StripeError as exc:
            raise GatewayError(
                f"Stripe failed: {exc.user_message or exc}", retryable=True
            ) from None


def _session_expiry(wanted: datetime) -> int:
    """Stripe takes a Checkout Session's expiry 30 minutes to 24 hours ahead: the link's own
    expiry, held within that (the saga expires the payment at its own time all the same)."""
    now = time.time()
    return int(min(max(wanted.timestamp(), now + 31 * 60), now + 24 * 3600 - 5 * 60))


def _plain(metadata: Any) -> dict[str, Any]:
    return dict(metadata) if isinstance(metadata, dict) else {}
