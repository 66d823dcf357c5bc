"""What a payment gateway does for a saga, whichever gateway it is: the small interface that the
Razorpay and Stripe modules implement over their official (blocking) SDKs.

Every method blocks on the network: call them from an actor's thread, never the event loop.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, Protocol

from mitra.errors import InvalidInput, MitraError
from mitra.integrations import Credentials, IntegrationService, ProviderSpec

RAZORPAY = ProviderSpec(
    "razorpay", config_fields=("key_id",), secret_fields=("key_secret", "webhook_secret")
)
STRIPE = ProviderSpec(
    "stripe", config_fields=("publishable_key",), secret_fields=("secret_key", "webhook_secret")
)
SPECS = {spec.name: spec for spec in (RAZORPAY, STRIPE)}
GATEWAYS = tuple(SPECS)
# Where nobody names a gateway (an agent's link, the assistant's), the first one the agency set up.
GATEWAY_PREFERENCE = (RAZORPAY.name, STRIPE.name)

# Premiums are whole paise; every currency Mitra collects in has two minor digits.
MINOR_UNITS = Decimal(100)

Observation = Literal["pending", "authorised", "captured", "failed", "expired"]


async def configured_gateway(
    integrations: IntegrationService, tenant_id: uuid.UUID, asked: str | None
) -> str:
    """The gateway a new payment goes through: the one asked for, or the agency's preferred.

    Checked before the payment is written: a payment for a gateway the agency has not set up
    could never be placed, and would sit `created` for ever.
    """
    for name in (asked,) if asked is not None else GATEWAY_PREFERENCE:
        if await integrations.credentials(tenant_id, name) is not None:
            return name
    if asked is not None:
        raise InvalidInput.for_field("gateway", f"the agency has not set up {asked}")
    raise InvalidInput.for_field(
        "gateway", "the agency has set up no payment gateway; an admin sets up Razorpay or Stripe"
    )


def to_minor(amount: Decimal) -> int:
    """Rupees to paise, exactly (an amount with fractions of a paisa is refused upstream)."""
    minor = amount * MINOR_UNITS
    if minor != minor.to_integral_value():
        raise ValueError(f"{amount} is not a whole number of minor units")
    return int(minor)


def from_minor(minor: int) -> Decimal:
    return (Decimal(minor) / MINOR_UNITS).quantize(Decimal("0.01"))


class GatewayError(Exception):
    """The gateway refused or could not be reached; `retryable` when asking again may work."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class Charge:
    """What is to be paid, as a gateway needs it."""

    payment_id: uuid.UUID
    tenant_id: uuid.UUID
    policy_id: uuid.UUID
    policy_number: str
    amount: Decimal
    currency: str
    expires_at: datetime
    customer_name: str = ""
    customer_phone: str = ""

    @property
    def notes(self) -> dict[str, str]:
        """Carried by the gateway and echoed in its webhooks: how an event finds its payment."""
        return {
            "payment_id": str(self.payment_id),
            "policy_id": str(self.policy_id),
            "tenant_id": str(self.tenant_id),
        }


@dataclass(frozen=True)
class Placed:
    """The gateway's handle of the order or link, and what the customer pays with."""

    order_id: str
    checkout: dict[str, Any]


@dataclass(frozen=True)
class Observed:
    """What the gateway says, when asked, of a payment's state."""

    state: Observation
    payment_ref: str | None = None
    amount_minor: int | None = None
    currency: str | None = None


@dataclass(frozen=True)
class Refunded:
    refund_id: str
    status: Literal["pending", "processed", "failed"]


@dataclass(frozen=True)
class Listed:
    """One payment in the gateway's own list (reconciliation)."""

    payment_ref: str
    order_ref: str | None
    state: Observation
    amount_minor: int
    currency: str
    payment_id: uuid.UUID | None
    extra: dict[str, Any] = field(default_factory=dict)


class Gateway(Protocol):
    name: str

    def place_order(self, charge: Charge) -> Placed: ...

    def place_link(self, charge: Charge) -> Placed: ...

    def observe(self, kind: str, order_id: str) -> Observed: ...

    def cancel(self, kind: str, order_id: str) -> bool: ...

    def refund(
        self, payment_ref: str, amount_minor: int, idempotency_key: str, reason: str
    ) -> Refunded: ...

    def list_payments(self, start: datetime, end: datetime) -> list[Listed]: ...


class GatewayFactory(Protocol):
    def __call__(self, credentials: Credentials) -> Gateway: ...


def payment_id_in(notes: Any) -> uuid.UUID | None:
    """Our payment id from a gateway's notes or metadata (Razorpay sends `[]` for none)."""
    if not isinstance(notes, dict):
        return None
    value = notes.get("payment_id")
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None


class GatewayRefused(MitraError):
    """The gateway refused what was asked of it (its reason in the message): the tenant's keys,
    an amount it will not take. Not an outage (that is `Unavailable`, 503), so a 409: asking
    again the same way gets the same answer until someone changes something."""

    status = 409
    code = "gateway_refused"
    default_message = "the payment gateway refused the request"
