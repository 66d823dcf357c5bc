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
from mitra.models.analytics import NO_AGENT, AnalyticsDaily
from mitra.models.chat import Conversation, ConversationMember, Message
from mitra.models.imports import ImportJob, ImportRowError, ImportStatus, ImportType
from mitra.models.integrations import TenantIntegration
from mitra.models.outbox import OutboxEvent, ProcessedEvent
from mitra.models.policies import (
    Customer,
    Policy,
    PolicyStatus,
    PolicyType,
    PremiumFrequency,
)
from mitra.models.whatsapp import WhatsAppSend, WhatsAppTemplate

__all__ = [
    "NO_AGENT",
    "AnalyticsDaily",
    "AuthSession",
    "Conversation",
    "ConversationMember",
    "Customer",
    "ImportJob",
    "ImportRowError",
    "ImportStatus",
    "ImportType",
    "Message",
    "OtpChallenge",
    "OutboxEvent",
    "PasswordResetToken",
    "Policy",
    "PolicyStatus",
    "PolicyType",
    "PremiumFrequency",
    "ProcessedEvent",
    "RefreshToken",
    "Role",
    "Tenant",
    "TenantIntegration",
    "User",
    "WhatsAppSend",
    "WhatsAppTemplate",
]
