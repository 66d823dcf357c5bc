"""Tenants, users and the rows behind sessions, refresh tokens, OTP challenges and resets."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from mitra.db import Base, TenantOwned, string_enum


class Role(enum.StrEnum):
    SUPER_ADMIN = "super_admin"
    PROVIDER_ADMIN = "provider_admin"
    SENIOR_AGENT = "senior_agent"
    JUNIOR_AGENT = "junior_agent"
    POLICYHOLDER = "policyholder"

    @property
    def is_admin(self) -> bool:
        return self in (Role.SUPER_ADMIN, Role.PROVIDER_ADMIN)

    @property
    def is_agent(self) -> bool:
        return self in (Role.SENIOR_AGENT, Role.JUNIOR_AGENT)

    @property
    def is_staff(self) -> bool:
        return self is not Role.POLICYHOLDER


class Tenant(Base):
    """An agency: every tenant-owned row points at one."""

    __tablename__ = "tenants"

    slug: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    is_active: Mapped[bool] = mapped_column(default=True)


class User(TenantOwned, Base):
    """A login. Email and phone are unique across the deployment, so login needs no tenant."""

    __tablename__ = "users"

    email: Mapped[str] = mapped_column(String(254), unique=True)
    phone_number: Mapped[str | None] = mapped_column(String(20), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    first_name: Mapped[str] = mapped_column(String(100))
    last_name: Mapped[str] = mapped_column(String(100))
    role: Mapped[Role] = mapped_column(string_enum(Role, "user_role"))
    is_active: Mapped[bool] = mapped_column(default=True)
    mfa_enabled: Mapped[bool] = mapped_column(default=False)
    failed_login_count: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None]
    last_login_at: Mapped[datetime | None]
    password_changed_at: Mapped[datetime | None]


class AuthSession(TenantOwned, Base):
    """One login on one device; its refresh tokens form a family revoked together."""

    __tablename__ = "auth_sessions"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    revoked_reason: Mapped[str | None] = mapped_column(String(40))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    ip_address: Mapped[str | None] = mapped_column(String(64))


class RefreshToken(TenantOwned, Base):
    """One issued refresh token (its `jti` is the row id); used once, then rotated."""

    __tablename__ = "refresh_tokens"

    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("auth_sessions.id", ondelete="CASCADE"), index=True
    )
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class OtpChallenge(TenantOwned, Base):
    """A one-time code sent to finish an MFA login; only its hash is stored."""

    __tablename__ = "otp_challenges"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    code_hash: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(default=0)
    consumed_at: Mapped[datetime | None]


class PasswordResetToken(TenantOwned, Base):
    """A single-use reset token; the row keeps the token's SHA-256, never the token."""

    __tablename__ = "password_reset_tokens"
    __table_args__ = (Index("ix_password_reset_tokens_token_hash", "token_hash", unique=True),)

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
