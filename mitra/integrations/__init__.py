"""Tenants' credentials for outside providers, sealed at rest (`crypto`), kept in one place."""

from mitra.integrations.crypto import SecretBox, SecretsUnreadable, mask
from mitra.integrations.service import (
    Credentials,
    IntegrationService,
    MaskedIntegration,
    ProviderSpec,
)

__all__ = [
    "Credentials",
    "IntegrationService",
    "MaskedIntegration",
    "ProviderSpec",
    "SecretBox",
    "SecretsUnreadable",
    "mask",
]
