"""A tenant's WhatsApp Business number: its ids, its default agent and its secrets."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select

from mitra.auth.principal import Principal
from mitra.db import Database, Scope
from mitra.errors import InvalidInput
from mitra.integrations import Credentials, IntegrationService, MaskedIntegration, ProviderSpec
from mitra.models import User
from mitra.phones import to_e164

WHATSAPP = ProviderSpec(
    "whatsapp",
    config_fields=("phone_number_id", "business_number", "business_account_id", "default_agent_id"),
    secret_fields=("access_token", "app_secret", "verify_token"),
)


@dataclass(frozen=True)
class WhatsAppNumber:
    """What the server needs of a tenant's integration (secrets opened: never a reply)."""

    tenant_id: uuid.UUID
    phone_number_id: str
    business_number: str
    business_account_id: str | None
    default_agent_id: uuid.UUID
    access_token: str
    app_secret: str
    verify_token: str

    def __repr__(self) -> str:
        return f"WhatsAppNumber(tenant_id={self.tenant_id}, phone_number_id={self.phone_number_id})"

    @classmethod
    def from_credentials(cls, credentials: Credentials) -> WhatsAppNumber:
        config, secrets = credentials.config, credentials.secrets
        return cls(
            tenant_id=credentials.tenant_id,
            phone_number_id=str(config["phone_number_id"]),
            business_number=str(config["business_number"]),
            business_account_id=config.get("business_account_id"),
            default_agent_id=uuid.UUID(str(config["default_agent_id"])),
            access_token=secrets["access_token"],
            app_secret=secrets["app_secret"],
            verify_token=secrets["verify_token"],
        )


class WhatsAppSetup:
    def __init__(self, database: Database, integrations: IntegrationService) -> None:
        self._db = database
        self._integrations = integrations

    async def put(
        self,
        principal: Principal,
        *,
        phone_number_id: str,
        business_number: str,
        default_agent_id: uuid.UUID,
        business_account_id: str | None,
        secrets: dict[str, str | None],
    ) -> MaskedIntegration:
        try:
            number = to_e164(business_number)
        except ValueError as exc:
            raise InvalidInput.for_field("business_number", str(exc)) from None
        await self._require_agent(principal.tenant_id, default_agent_id)
        config = {
            "phone_number_id": phone_number_id,
            "business_number": number,
            "business_account_id": business_account_id,
            "default_agent_id": str(default_agent_id),
        }
        return await self._integrations.put(principal, WHATSAPP, config, secrets)

    async def get(self, principal: Principal) -> MaskedIntegration:
        return await self._integrations.get(principal, WHATSAPP)

    async def number(self, tenant_id: uuid.UUID) -> WhatsAppNumber | None:
        credentials = await self._integrations.credentials(tenant_id, WHATSAPP.name)
        return None if credentials is None else WhatsAppNumber.from_credentials(credentials)

    async def _require_agent(self, tenant_id: uuid.UUID, user_id: uuid.UUID) -> None:
        async with self._db.session(Scope.tenant(tenant_id)) as session:
            user = await session.scalar(select(User).where(User.id == user_id, User.is_active))
        if user is None or not (user.role.is_agent or user.role.is_admin):
            raise InvalidInput.for_field(
                "default_agent_id", "must be an active agent or admin of the agency"
            )
