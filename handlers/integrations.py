"""`/api/v1/integrations`: a tenant's provider settings (admins); secrets go in, never out."""

from __future__ import annotations

from aiohttp import web

from handlers.envelope import ok
from handlers.keys import INTEGRATIONS, WHATSAPP_SETUP
from handlers.openapi import operation
from handlers.schemas.integrations import (
    RazorpayIntegrationRequest,
    RazorpayIntegrationResponse,
    StripeIntegrationRequest,
    StripeIntegrationResponse,
    WhatsAppIntegrationRequest,
    WhatsAppIntegrationResponse,
)
from handlers.security import authenticate
from handlers.validation import parse_body
from mitra.integrations import MaskedIntegration
from mitra.payments import RAZORPAY, STRIPE

GatewayResponse = RazorpayIntegrationResponse | StripeIntegrationResponse

routes = web.RouteTableDef()
TAGS = ("integrations",)


def _shape(tenant_id: object, shown: MaskedIntegration) -> WhatsAppIntegrationResponse:
    return WhatsAppIntegrationResponse.model_validate(
        {
            "provider": shown.provider,
            **shown.config,
            **shown.secrets,
            "webhook_path": f"/api/v1/webhooks/whatsapp/{tenant_id}",
            "updated_at": shown.updated_at,
        }
    )


@routes.put("/api/v1/integrations/whatsapp")
@operation(
    "Set up the agency's WhatsApp Business number",
    description="Tenant admins. Secrets are stored encrypted and answered masked; a secret "
    "left out keeps its stored value.",
    tags=TAGS,
    body=WhatsAppIntegrationRequest,
    response=WhatsAppIntegrationResponse,
    errors=(403,),
)
async def put_whatsapp(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    body = await parse_body(request, WhatsAppIntegrationRequest)
    shown = await request.app[WHATSAPP_SETUP].put(
        principal,
        phone_number_id=body.phone_number_id,
        business_number=body.business_number,
        default_agent_id=body.default_agent_id,
        business_account_id=body.business_account_id,
        secrets={
            "access_token": body.access_token,
            "app_secret": body.app_secret,
            "verify_token": body.verify_token,
        },
    )
    return ok(_shape(principal.tenant_id, shown), message="whatsapp integration saved")


@routes.get("/api/v1/integrations/whatsapp")
@operation(
    "The agency's WhatsApp Business number, secrets masked",
    tags=TAGS,
    response=WhatsAppIntegrationResponse,
    errors=(403, 404),
)
async def get_whatsapp(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    shown = await request.app[WHATSAPP_SETUP].get(principal)
    return ok(_shape(principal.tenant_id, shown))


# ---- payment gateways: the same sealed store, one spec per provider ---------------------------


def _gateway_shape(
    tenant_id: object,
    shown: MaskedIntegration,
    model: type[RazorpayIntegrationResponse] | type[StripeIntegrationResponse],
) -> GatewayResponse:
    return model.model_validate(
        {
            "provider": shown.provider,
            **shown.config,
            **shown.secrets,
            "webhook_path": f"/api/v1/webhooks/{shown.provider}/{tenant_id}",
            "updated_at": shown.updated_at,
        }
    )


@routes.put("/api/v1/integrations/razorpay")
@operation(
    "Set up the agency's Razorpay account",
    description="Tenant admins. `key_secret` and `webhook_secret` are stored encrypted and "
    "answered masked; a secret left out keeps its stored value.",
    tags=TAGS,
    body=RazorpayIntegrationRequest,
    response=RazorpayIntegrationResponse,
    errors=(403,),
)
async def put_razorpay(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    body = await parse_body(request, RazorpayIntegrationRequest)
    shown = await request.app[INTEGRATIONS].put(
        principal,
        RAZORPAY,
        {"key_id": body.key_id},
        {"key_secret": body.key_secret, "webhook_secret": body.webhook_secret},
    )
    data = _gateway_shape(principal.tenant_id, shown, RazorpayIntegrationResponse)
    return ok(data, message="razorpay integration saved")


@routes.get("/api/v1/integrations/razorpay")
@operation(
    "The agency's Razorpay account, secrets masked",
    tags=TAGS,
    response=RazorpayIntegrationResponse,
    errors=(403, 404),
)
async def get_razorpay(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    shown = await request.app[INTEGRATIONS].get(principal, RAZORPAY)
    return ok(_gateway_shape(principal.tenant_id, shown, RazorpayIntegrationResponse))


@routes.put("/api/v1/integrations/stripe")
@operation(
    "Set up the agency's Stripe account",
    description="Tenant admins. `secret_key` and `webhook_secret` are stored encrypted and "
    "answered masked; a secret left out keeps its stored value.",
    tags=TAGS,
    body=StripeIntegrationRequest,
    response=StripeIntegrationResponse,
    errors=(403,),
)
async def put_stripe(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    body = await parse_body(request, StripeIntegrationRequest)
    shown = await request.app[INTEGRATIONS].put(
        principal,
        STRIPE,
        {"publishable_key": body.publishable_key},
        {"secret_key": body.secret_key, "webhook_secret": body.webhook_secret},
    )
    data = _gateway_shape(principal.tenant_id, shown, StripeIntegrationResponse)
    return ok(data, message="stripe integration saved")


@routes.get("/api/v1/integrations/stripe")
@operation(
    "The agency's Stripe account, secrets masked",
    tags=TAGS,
    response=StripeIntegrationResponse,
    errors=(403, 404),
)
async def get_stripe(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    shown = await request.app[INTEGRATIONS].get(principal, STRIPE)
    return ok(_gateway_shape(principal.tenant_id, shown, StripeIntegrationResponse))
