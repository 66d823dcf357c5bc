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
from mitra.models.analytics import AnalyticsDaily
from mitra.models.outbox import OutboxEvent, ProcessedEvent

__all__ = [
    "AnalyticsDaily",
    "AuthSession",
    "OtpChallenge",
    "OutboxEvent",
    "PasswordResetToken",
    "ProcessedEvent",
    "RefreshToken",
    "Role",
    "Tenant",
    "User",
]
