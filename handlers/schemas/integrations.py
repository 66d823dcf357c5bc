"""Request and response models of `/api/v1/integrations`."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from handlers.schemas.common import RequestModel, ResponseModel

# Credentials that travel in an HTTP header (a bearer token, Basic auth) must be printable ASCII:
# anything else cannot be sent at all (HTTP headers are latin-1), and no provider issues it.
HEADER_SAFE = r"^[\x21-\x7e]+$"


class WhatsAppIntegrationRequest(RequestModel):
    phone_number_id: str = Field(
        pattern=r"^\d{5,20}$", description="the business number's id in Meta's WhatsApp Manager"
    )
    business_number: str = Field(
        min_length=5, max_length=32, description="the number customers write to"
    )
    business_account_id: str | None = Field(
        None, pattern=r"^\d{5,20}$", description="the WhatsApp Business Account id (templates)"
    )
    default_agent_id: uuid.UUID = Field(
        description="the agent who gets customers writing from a number nobody knows"
    )
    access_token: str | None = Field(
        None,
        min_length=8,
        max_length=1000,
        pattern=HEADER_SAFE,
        description="Graph API token; left out, the stored one is kept",
    )
    app_secret: str | None = Field(
        None,
        min_length=8,
        max_length=1000,
        description="signs Meta's webhooks; left out, the stored one is kept",
    )
    verify_token: str | None = Field(
        None,
        min_length=8,
        max_length=1000,
        description="Meta's webhook verification; left out, kept",
    )


class WhatsAppIntegrationResponse(ResponseModel):
    provider: str
    phone_number_id: str
    business_number: str
    business_account_id: str | None
    default_agent_id: uuid.UUID
    access_token: str = Field(description="masked: its last 4 characters")
    app_secret: str = Field(description="masked: its last 4 characters")
    verify_token: str = Field(description="masked: its last 4 characters")
    webhook_path: str = Field(description="where Meta posts this tenant's webhooks")
    updated_at: datetime


# ---- payment gateways (issue 10) -----------------------------------------------------------------


class RazorpayIntegrationRequest(RequestModel):
    key_id: str = Field(
        pattern=r"^rzp_(test|live)_[A-Za-z0-9]{6,40}$", description="the API key id (public)"
    )
    key_secret: str | None = Field(
        None,
        min_length=8,
        max_length=500,
        pattern=HEADER_SAFE,
        description="left out, the stored one is kept",
    )
    webhook_secret: str | None = Field(
        None, min_length=8, max_length=500, description="signs Razorpay's webhooks; left out, kept"
    )


class RazorpayIntegrationResponse(ResponseModel):
    provider: str
    key_id: str
    key_secret: str = Field(description="masked: its last 4 characters")
    webhook_secret: str = Field(description="masked: its last 4 characters")
    webhook_path: str = Field(description="where Razorpay posts this tenant's webhooks")
    updated_at: datetime


class StripeIntegrationRequest(RequestModel):
    publishable_key: str = Field(
        pattern=r"^pk_(test|live)_[A-Za-z0-9]{6,200}$", description="the publishable key"
    )
    secret_key: str | None = Field(
        None,
        pattern=r"^(sk|rk)_(test|live)_[A-Za-z0-9]{6,200}$",
        description="left out, the stored one is kept",
    )
    webhook_secret: str | None = Field(
        None,
        min_length=8,
        max_length=500,
        description="the endpoint's signing secret (whsec_…); left out, kept",
    )


class StripeIntegrationResponse(ResponseModel):
    provider: str
    publishable_key: str
    secret_key: str = Field(description="masked: its last 4 characters")
    webhook_secret: str = Field(description="masked: its last 4 characters")
    webhook_path: str = Field(description="where Stripe posts this tenant's webhooks")
    updated_at: datetime
