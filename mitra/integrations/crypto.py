"""Sealing provider secrets at rest: AES-256-GCM with a key from settings.

The associated data binds each ciphertext to its tenant and provider, so a sealed blob copied
into another tenant's row (or another provider's) does not open.
"""

from __future__ import annotations

import base64
import os
import uuid
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

# The first byte names the format, so a later key rotation can tell old blobs from new ones.
_VERSION = b"\x01"
_NONCE_BYTES = 12


class SecretsUnreadable(Exception):
    """The sealed secrets do not open with this key (it changed, or the row was tampered with)."""


class SecretBox:
    def __init__(self, key_base64: str) -> None:
        self._aead = AESGCM(base64.b64decode(key_base64, validate=True))

    def seal(self, tenant_id: uuid.UUID, provider: str, secrets: dict[str, Any]) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, orjson.dumps(secrets), _bound_to(tenant_id, provider))
        return _VERSION + nonce + sealed

    def open(self, tenant_id: uuid.UUID, provider: str, blob: bytes) -> dict[str, Any]:
        if blob[:1] != _VERSION:
            raise SecretsUnreadable("unknown format")
        nonce, sealed = blob[1 : 1 + _NONCE_BYTES], blob[1 + _NONCE_BYTES :]
        try:
            plain = self._aead.decrypt(nonce, sealed, _bound_to(tenant_id, provider))
        except InvalidTag:
            raise SecretsUnreadable("the secrets do not open with this key") from None
        secrets: dict[str, Any] = orjson.loads(plain)
        return secrets


def _bound_to(tenant_id: uuid.UUID, provider: str) -> bytes:
    return f"{tenant_id}:{provider}".encode()


def mask(secret: str) -> str:
    """What an API may show of a secret: its last 4 characters."""
    return "…" + secret[-4:] if len(secret) > 8 else "…"
