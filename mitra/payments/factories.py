"""Gateways built from a tenant's credentials, pointed where the settings say."""

from __future__ import annotations

from collections.abc import Callable

from mitra.integrations import Credentials
from mitra.payments.gateway import Gateway
from mitra.payments.razorpay_gateway import RazorpayGateway
from mitra.payments.stripe_gateway import StripeGateway
from mitra.settings import PaymentsSettings


def gateway_factories(settings: PaymentsSettings) -> dict[str, Callable[[Credentials], Gateway]]:
    def razorpay(credentials: Credentials) -> Gateway:
        return RazorpayGateway(
            credentials,
            base_url=settings.razorpay_base_url,
            timeout=settings.request_timeout_seconds,
        )

    def stripe(credentials: Credentials) -> Gateway:
        return StripeGateway(
            credentials,
            base_url=settings.stripe_base_url,
            timeout=settings.request_timeout_seconds,
            return_url=settings.return_url,
        )

    return {"razorpay": razorpay, "stripe": stripe}
