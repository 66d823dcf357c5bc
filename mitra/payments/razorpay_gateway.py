"""Razorpay through its official SDK (`razorpay.Client`): orders for Checkout, payment links,
fetches, refunds and the payments list. Blocking: an actor's thread calls it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import razorpay
import requests
from razorpay.errors import BadRequestError, ServerError
from razorpay.errors import GatewayError as RazorpayGatewayError

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

PAGE = 100
_STATES: dict[str, Observation] = {
    "created": "pending",
    "authorized": "authorised",
    "captured": "captured",
    "failed": "failed",
    "refunded": "captured",
}


class RazorpayGateway:
    name = "razorpay"

    def __init__(self, credentials: Credentials, *, base_url: str, timeout: float) -> None:
        self.key_id = str(credentials.config["key_id"])
        self._client = razorpay.Client(
            auth=(self.key_id, credentials.secrets["key_secret"]), base_url=base_url.rstrip("/")
        )
        self._client.set_app_details({"title": "Mitra", "version": "1"})
        self._timeout = timeout

    def place_order(self, charge: Charge) -> Placed:
        # Orders have no idempotency key; the receipt (our payment id) finds one made by an
        # attempt whose answer was lost (a timeout, a crash), so a retry does not make two.
        earlier = self._call(self._client.order.all, {"receipt": str(charge.payment_id)})
        items = earlier.get("items") or []
        order = items[0] if items else self._call(
            self._client.order.create,
            {
                "amount": _minor(charge),
                "currency": charge.currency,
                "receipt": str(charge.payment_id),
                "notes": charge.notes,
            },
        )  # fmt: skip
        return Placed(
            str(order["id"]),
            {"key_id": self.key_id, "order_id": order["id"], "amount": order["amount"]},
        )

    def place_link(self, charge: Charge) -> Placed:
        body: dict[str, Any] = {
            "amount": _minor(charge),
            "currency": charge.currency,
            "reference_id": str(charge.payment_id),
            "description": f"Premium of policy {charge.policy_number}",
            "expire_by": int(charge.expires_at.timestamp()),
            "notes": charge.notes,
            # Mitra sends the link in the chat; Razorpay's own SMS and email would repeat it.
            "notify": {"sms": False, "email": False},
        }
        if charge.customer_name:
            body["customer"] = {"name": charge.customer_name, "contact": charge.customer_phone}
        link = self._call(self._client.payment_link.create, body)
        return Placed(str(link["id"]), {"url": link["short_url"]})

    def observe(self, kind: str, order_id: str) -> Observed:
        if kind == "link":
            link = self._call(self._client.payment_link.fetch, order_id)
            if link.get("status") in ("expired", "cancelled"):
                return Observed("expired")
            payments = link.get("payments") or []
            order_id = str(link.get("order_id") or "")
            if not payments and not order_id:
                return Observed("pending")
        listed = self._call(self._client.order.payments, order_id)
        best: Observed = Observed("pending")
        rank = ("pending", "failed", "authorised", "captured")
        for item in listed.get("items", []):
            state = _STATES.get(str(item.get("status")), "pending")
            if rank.index(state) > rank.index(best.state):
                best = Observed(state, str(item["id"]), int(item["amount"]), str(item["currency"]))
        return best

    def cancel(self, kind: str, order_id: str) -> bool:
        if kind != "link":
            return False  # Razorpay orders cannot be cancelled: an unpaid one just lapses
        self._call(self._client.payment_link.cancel, order_id)
        return True

    def refund(
        self, payment_ref: str, amount_minor: int, idempotency_key: str, reason: str
    ) -> Refunded:
        refund = self._call(
            self._client.payment.refund,
            payment_ref,
            {"amount": amount_minor, "notes": {"reason": reason[:200]}},
            headers={"X-Refund-Idempotency": idempotency_key},
        )
        status = str(refund.get("status"))
        return Refunded(str(refund["id"]), "processed" if status == "processed" else "pending")

    def list_payments(self, start: datetime, end: datetime) -> list[Listed]:
        found: list[Listed] = []
        skip = 0
        while True:
            page = self._call(
                self._client.payment.all,
                {
                    "from": int(start.timestamp()),
                    "to": int(end.timestamp()),
                    "count": PAGE,
                    "skip": skip,
                },
            )
            items = page.get("items", [])
            for item in items:
                found.append(
                    Listed(
                        payment_ref=str(item["id"]),
                        order_ref=item.get("order_id"),
                        state=_STATES.get(str(item.get("status")), "pending"),
                        amount_minor=int(item["amount"]),
                        currency=str(item["currency"]),
                        payment_id=payment_id_in(item.get("notes")),
                    )
                )
            if len(items) < PAGE:
                return found
            skip += PAGE

    def _call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, timeout=self._timeout, **kwargs)
        except BadRequestError as exc:
            raise GatewayError(f"Razorpay refused: {exc}", retryable=False) from None
        except (RazorpayGatewayError, ServerError) as exc:
            raise GatewayError(f"Razorpay failed: {exc}", retryable=True) from None
        except (requests.RequestException, ValueError) as exc:
            raise GatewayError(f"Razorpay unreachable: {exc}", retryable=True) from None


def _minor(charge: Charge) -> int:
    return to_minor(charge.amount)
