"""JWT access, refresh and MFA tokens with pyjwt; the algorithm is pinned when decoding."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt

from mitra.errors import Unauthorized
from mitra.models import Role
from mitra.settings import AuthSettings


class TokenKind(enum.StrEnum):
    ACCESS = "access"
    REFRESH = "refresh"
    MFA = "mfa"


@dataclass(frozen=True)
class TokenClaims:
    """The verified claims of a token."""

    sub: uuid.UUID
    tenant_id: uuid.UUID
    role: Role
    kind: TokenKind
    jti: uuid.UUID
    issued_at: datetime
    expires_at: datetime
    session_id: uuid.UUID | None = None


_REQUIRED = ["sub", "tenant_id", "role", "type", "jti", "iat", "exp", "iss"]


class TokenCodec:
    """Signs and verifies Mitra's tokens with the configured key and algorithm only."""

    def __init__(self, settings: AuthSettings) -> None:
        self._algorithm = settings.jwt_algorithm
        self._issuer = settings.jwt_issuer
        self._ttl = {
            TokenKind.ACCESS: timedelta(seconds=settings.access_token_ttl_seconds),
            TokenKind.REFRESH: timedelta(seconds=settings.refresh_token_ttl_seconds),
            TokenKind.MFA: timedelta(seconds=settings.otp_ttl_seconds),
        }
        if self._algorithm == "RS256":
            self._signing_key: str = Path(settings.jwt_private_key_file).read_text()
            self._verifying_key: str = Path(settings.jwt_public_key_file).read_text()
        else:
            self._signing_key = self._verifying_key = settings.jwt_secret

    def ttl(self, kind: TokenKind) -> timedelta:
        return self._ttl[kind]

    def issue(
        self,
        kind: TokenKind,
        *,
        user_id: uuid.UUID,
        tenant_id: uuid.UUID,
        role: Role,
        jti: uuid.UUID | None = None,
        session_id: uuid.UUID | None = None,
        now: datetime | None = None,
    ) -> tuple[str, TokenClaims]:
        issued = (now or datetime.now(UTC)).replace(microsecond=0)
        claims = TokenClaims(
            sub=user_id,
            tenant_id=tenant_id,
            role=role,
            kind=kind,
            jti=jti or uuid.uuid4(),
            issued_at=issued,
            expires_at=issued + self._ttl[kind],
            session_id=session_id,
        )
        payload: dict[str, Any] = {
            "iss": self._issuer,
            "sub": str(claims.sub),
            "tenant_id": str(claims.tenant_id),
            "role": claims.role.value,
            "type": claims.kind.value,
            "jti": str(claims.jti),
            "iat": int(claims.issued_at.timestamp()),
            "exp": int(claims.expires_at.timestamp()),
        }
        if session_id is not None:
            payload["sid"] = str(session_id)
        token = jwt.encode(payload, self._signing_key, algorithm=self._algorithm)
        return token, claims

    def decode(self, token: str, expected: TokenKind) -> TokenClaims:
        """Verify signature, algorithm, issuer, expiry and kind; any failure is a 401."""
        try:
            payload = jwt.decode(
                token,
                self._verifying_key,
                algorithms=[self._algorithm],
                issuer=self._issuer,
                options={"require": _REQUIRED},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("token expired") from None
        except jwt.InvalidTokenError:
            raise Unauthorized("invalid token") from None
        if payload.get("type") != expected.value:
            raise Unauthorized(f"expected a {expected.value} token")
        try:
            return TokenClaims(
                sub=uuid.UUID(payload["sub"]),
                tenant_id=uuid.UUID(payload["tenant_id"]),
                role=Role(payload["role"]),
                kind=expected,
                jti=uuid.UUID(payload["jti"]),
                issued_at=datetime.fromtimestamp(payload["iat"], UTC),
                expires_at=datetime.fromtimestamp(payload["exp"], UTC),
                session_id=uuid.UUID(payload["sid"]) if "sid" in payload else None,
            )
        except (KeyError, ValueError, TypeError):
            raise Unauthorized("invalid token") from None
