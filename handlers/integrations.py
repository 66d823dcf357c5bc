"""`/api/v1/integrations`: a tenant's provider settings (admins); secrets go in, never out."""

from __future__ import annotations

from aiohttp import web

from handlers.envelope import ok
from handlers.keys import WHATSAPP_SETUP
from handlers.openapi import operation
from handlers.schemas.integrations import (
    WhatsAppIntegrationRequest,
    WhatsAppIntegrationResponse,
)
from handlers.security import authenticate
from handlers.validation import parse_body
from mitra.integrations import MaskedIntegration

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
