"""Tokens: RS256 by configuration, algorithm pinning, and kind checks."""

from __future__ import annotations

import uuid
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mitra.auth import TokenCodec, TokenKind
from mitra.errors import Unauthorized
from mitra.models import Role
from mitra.settings import AuthSettings


@pytest.fixture
def rsa_settings(tmp_path: Path) -> AuthSettings:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = tmp_path / "private.pem"
    public = tmp_path / "public.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return AuthSettings(
        jwt_algorithm="RS256",
        jwt_private_key_file=str(private),
        jwt_public_key_file=str(public),
    )


def _issue(codec: TokenCodec, kind: TokenKind = TokenKind.ACCESS) -> str:
    token, _ = codec.issue(
        kind,
        user_id=uuid.uuid4(),
        tenant_id=uuid.uuid4(),
        role=Role.JUNIOR_AGENT,
        session_id=uuid.uuid4(),
    )
    return token


def test_rs256_round_trip(rsa_settings: AuthSettings) -> None:
    codec = TokenCodec(rsa_settings)
    token = _issue(codec)
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    claims = codec.decode(token, TokenKind.ACCESS)
    assert claims.role is Role.JUNIOR_AGENT
    assert claims.expires_at - claims.issued_at == codec.ttl(TokenKind.ACCESS)


def test_hs256_token_signed_with_the_public_key_is_refused(rsa_settings: AuthSettings) -> None:
    """The classic key-confusion attack: HS256 keyed with the (public) RSA key."""
    codec = TokenCodec(rsa_settings)
    genuine = jwt.decode(_issue(codec), options={"verify_signature": False})
    public_pem = Path(rsa_settings.jwt_public_key_file).read_bytes()
    import base64
    import hashlib
    import hmac

    import orjson

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    signing_input = (
        f"{b64(orjson.dumps({'alg': 'HS256', 'typ': 'JWT'}))}.{b64(orjson.dumps(genuine))}"
    )
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    with pytest.raises(Unauthorized, match="invalid token"):
        codec.decode(f"{signing_input}.{b64(signature)}", TokenKind.ACCESS)


def test_kind_and_issuer_are_checked() -> None:
    codec = TokenCodec(AuthSettings())
    refresh = _issue(codec, TokenKind.REFRESH)
    with pytest.raises(Unauthorized, match="expected a access token"):
        codec.decode(refresh, TokenKind.ACCESS)
    other_issuer = TokenCodec(AuthSettings(jwt_issuer="someone-else"))
    with pytest.raises(Unauthorized, match="invalid token"):
        other_issuer.decode(_issue(codec), TokenKind.ACCESS)
