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
from mitra.models.policies import (
    Customer,
    Policy,
    PolicyStatus,
    PolicyType,
    PremiumFrequency,
)

__all__ = [
    "AuthSession",
    "Customer",
    "OtpChallenge",
    "OutboxEvent",
    "PasswordResetToken",
    "Policy",
    "PolicyStatus",
    "PolicyType",
    "PremiumFrequency",
    "RefreshToken",
    "Role",
    "Tenant",
    "User",
]
