"""All mapped tables, imported together so metadata and migrations see every one."""

from mitra.models.accounts import (
    AuthSession,
    OtpChallenge,
    PasswordResetToken,
    RefreshToken,
    Role,
    Tenant,
    User,
)
from mitra.models.outbox import OutboxEvent

__all__ = [
    "AuthSession",
    "OtpChallenge",
    "OutboxEvent",
    "PasswordResetToken",
    "RefreshToken",
    "Role",
    "Tenant",
    "User",
]
