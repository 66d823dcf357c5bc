"""Premium payments as sagas over Razorpay and Stripe: gateways, webhooks, the durable state."""

from mitra.payments.gateway import (
    GATEWAYS,
    RAZORPAY,
    SPECS,
    STRIPE,
    Charge,
    Gateway,
    GatewayError,
    Listed,
    Observed,
    Placed,
    Refunded,
    from_minor,
    to_minor,
)
from mitra.payments.store import PaymentQuery, PaymentState, PaymentStore
from mitra.payments.webhooks import GatewayEvent, WebhookRefused

__all__ = [
    "GATEWAYS",
    "RAZORPAY",
    "SPECS",
    "STRIPE",
    "Charge",
    "Gateway",
    "GatewayError",
    "GatewayEvent",
    "Listed",
    "Observed",
    "PaymentQuery",
    "PaymentState",
    "PaymentStore",
    "Placed",
    "Refunded",
    "WebhookRefused",
    "from_minor",
    "to_minor",
]
