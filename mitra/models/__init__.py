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
from mitra.models.assistant import AssistantSettings, AssistantUsage, CallbackRequest, KbArticle
from mitra.models.chat import Conversation, ConversationMember, Message
from mitra.models.imports import ImportJob, ImportRowError, ImportStatus, ImportType
from mitra.models.integrations import TenantIntegration
from mitra.models.outbox import OutboxEvent, ProcessedEvent
from mitra.models.payments import Payment, PaymentRefund, PaymentStep, PaymentWebhook
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
    "AssistantSettings",
    "AssistantUsage",
    "AuthSession",
    "CallbackRequest",
    "Conversation",
    "ConversationMember",
    "Customer",
    "ImportJob",
    "ImportRowError",
    "ImportStatus",
    "ImportType",
    "KbArticle",
    "Message",
    "OtpChallenge",
    "OutboxEvent",
    "PasswordResetToken",
    "Payment",
    "PaymentRefund",
    "PaymentStep",
    "PaymentWebhook",
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
