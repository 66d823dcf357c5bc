"""Tenants' provider settings: stored with their secrets sealed, shown with the secrets masked.

Every provider (WhatsApp now; Razorpay and Stripe next) keeps its credentials here, so there is
one place where secrets are sealed, one where they are opened, and none where they are logged.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from mitra.auth.principal import Principal
from mitra.db import Database, Scope
from mitra.errors import Conflict, Forbidden, InvalidInput, NotFound
from mitra.integrations.crypto import SecretBox, SecretsUnreadable, mask
from mitra.models import TenantIntegration

log = logging.getLogger("mitra.integrations")

# Webhooks read a tenant's credentials per request; a burst of them costs one read, and a
# change made on this instance is seen at once (it clears the entry).
_CACHE_SECONDS = 5.0


@dataclass(frozen=True)
class ProviderSpec:
    """Which of a provider's fields may be shown and which are secret."""

    name: str
    config_fields: tuple[str, ...]
    secret_fields: tuple[str, ...]


@dataclass(frozen=True)
class Credentials:
    """A provider's settings with its secrets opened: for the server's own use, never a reply."""

    tenant_id: uuid.UUID
    provider: str
    config: Mapping[str, Any]
    secrets: Mapping[str, str]

    def __repr__(self) -> str:  # a stray log line must not carry the secrets
        return f"Credentials(tenant_id={self.tenant_id}, provider={self.provider!r})"


@dataclass(frozen=True)
class MaskedIntegration:
    provider: str
    config: Mapping[str, Any]
    secrets: Mapping[str, str]
    updated_at: Any


class IntegrationService:
    def __init__(self, database: Database, box: SecretBox) -> None:
        self._db = database
        self._box = box
        self._cache: dict[tuple[uuid.UUID, str], tuple[float, Credentials | None]] = {}

    async def put(
        self,
        principal: Principal,
        spec: ProviderSpec,
        config: Mapping[str, Any],
        secrets: Mapping[str, str | None],
    ) -> MaskedIntegration:
        """Set the tenant's settings for a provider (tenant admins). A secret left out keeps
        its stored value, so changing a number does not mean typing every token again."""
        _require_admin(principal)
        tenant_id = principal.tenant_id
        async with self._db.transaction(Scope.tenant(tenant_id)) as session:
            row = await _row(session, spec.name)
            kept: dict[str, str] = {}
            if row is not None:
                # Sealed under a key since replaced: what is given now is all there is.
                with contextlib.suppress(SecretsUnreadable):
                    kept = self._box.open(tenant_id, spec.name, row.secrets)
            merged = {**kept, **{k: v for k, v in secrets.items() if v is not None}}
            missing = [name for name in spec.secret_fields if not merged.get(name)]
            if missing:
                raise InvalidInput.for_field(missing[0], "required (nothing is stored yet)")
            sealed = self._box.seal(tenant_id, spec.name, merged)
            if row is None:
                row = TenantIntegration(
                    tenant_id=tenant_id,
                    provider=spec.name,
                    config=dict(config),
                    secrets=sealed,
                    updated_by=principal.user_id,
                )
                session.add(row)
            else:
                row.config = dict(config)
                row.secrets = sealed
                row.updated_by = principal.user_id
            await session.flush()
            shown = _masked(spec, row, merged)
        self._cache.pop((tenant_id, spec.name), None)
        return shown

    async def get(self, principal: Principal, spec: ProviderSpec) -> MaskedIntegration:
        _require_admin(principal)
        async with self._db.session(Scope.tenant(principal.tenant_id)) as session:
            row = await _row(session, spec.name)
            if row is None:
                raise NotFound(f"no {spec.name} integration is set up")
            try:
                secrets = self._box.open(principal.tenant_id, spec.name, row.secrets)
            except SecretsUnreadable:
                raise Conflict(
                    f"the {spec.name} secrets were sealed with another key: set them again"
                ) from None
            return _masked(spec, row, secrets)

    async def credentials(self, tenant_id: uuid.UUID, provider: str) -> Credentials | None:
        """The tenant's opened credentials for `provider`, or None when it has none."""
        key = (tenant_id, provider)
        cached = self._cache.get(key)
        now = time.monotonic()
        if cached is not None and now - cached[0] < _CACHE_SECONDS:
            return cached[1]
        async with self._db.session(Scope.tenant(tenant_id)) as session:
            row = await _row(session, provider)
            found = None
            if row is not None:
                try:
                    secrets = self._box.open(tenant_id, provider, row.secrets)
                except SecretsUnreadable:
                    log.error(
                        "tenant %s: %s secrets do not open with this key", tenant_id, provider
                    )
                    secrets = None
                if secrets is not None:
                    found = Credentials(tenant_id, provider, dict(row.config), secrets)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (now, found)
        return found


async def _row(session: Any, provider: str) -> TenantIntegration | None:
    result = await session.execute(
        select(TenantIntegration).where(TenantIntegration.provider == provider)
    )
    row: TenantIntegration | None = result.scalar_one_or_none()
    return row


def _require_admin(principal: Principal) -> None:
    if not principal.role.is_admin:
        raise Forbidden("only the agency's admins manage its integrations")


def _masked(
    spec: ProviderSpec, row: TenantIntegration, secrets: Mapping[str, str]
) -> MaskedIntegration:
    return MaskedIntegration(
        provider=spec.name,
        config={name: row.config.get(name) for name in spec.config_fields},
        secrets={name: mask(secrets.get(name, "")) for name in spec.secret_fields},
        updated_at=row.updated_at,
    )
