"""Typed application state: every `web.AppKey` the app uses, in one module."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from aioprometheus.collectors import Registry

from actors import ActorSystem
from actors.assistant import ModeAnnouncer
from actors.assistant_inbound import AssistantInbound
from actors.chat import ChatActors
from actors.chat_router import ChatRouter
from actors.imports import ImportPipelines
from actors.payment_saga import GatewayFactory
from actors.payment_sagas import PaymentSagas
from handlers.chat_hub import SocketHub
from handlers.metrics_access import MetricsGuard
from handlers.user_frames import UserFrames
from mitra.accounts import AccountService
from mitra.analytics import AnalyticsService
from mitra.assistant import AssistantMetrics, AssistantService, KnowledgeBase, LlmFallback
from mitra.auth import AuthService, Notifier, PasswordHasher
from mitra.chat import ChatLimits, ConversationService, MessageWriter
from mitra.console import ConsoleBuild
from mitra.customers import CustomerService
from mitra.db import Database
from mitra.imports import ImportService
from mitra.integrations import IntegrationService
from mitra.observability import HttpMetrics
from mitra.payments import PaymentStore
from mitra.payments.metrics import PaymentMetrics
from mitra.policies import PolicyService
from mitra.settings import Settings
from mitra.whatsapp.graph import GraphClient
from mitra.whatsapp.inbox import WhatsAppInbox
from mitra.whatsapp.ledger import SendLedger
from mitra.whatsapp.metrics import WhatsAppMetrics
from mitra.whatsapp.setup import WhatsAppSetup
from mitra.whatsapp.templates import TemplateBook
from streams import Streams
from streams.analytics import AnalyticsConsumer
from streams.chat_fanout import ChatFanout
from streams.outbox import OutboxRelay

ReadinessCheck = Callable[[], Awaitable[None]]

SETTINGS = web.AppKey("settings", Settings)
DATABASE = web.AppKey("database", Database)
NOTIFIER = web.AppKey("notifier", Notifier)
AUTH = web.AppKey("auth", AuthService)
PASSWORD_HASHER = web.AppKey("password_hasher", PasswordHasher)
ACCOUNTS = web.AppKey("accounts", AccountService)
CUSTOMERS = web.AppKey("customers", CustomerService)
POLICIES = web.AppKey("policies", PolicyService)
OPENAPI_DOCUMENT = web.AppKey("openapi_document", bytes)
METRICS = web.AppKey("metrics_registry", Registry)
HTTP_METRICS = web.AppKey("http_metrics", HttpMetrics)
METRICS_GUARD = web.AppKey("metrics_guard", MetricsGuard)
STREAMS = web.AppKey("streams", Streams)
OUTBOX = web.AppKey("outbox_relay", OutboxRelay)
ANALYTICS = web.AppKey("analytics", AnalyticsService)
ANALYTICS_CONSUMER = web.AppKey("analytics_consumer", AnalyticsConsumer)
CONVERSATIONS = web.AppKey("conversations", ConversationService)
ACTORS = web.AppKey("actor_system", ActorSystem)
MESSAGE_WRITER = web.AppKey("message_writer", MessageWriter)
CHAT = web.AppKey("chat_actors", ChatActors)
CHAT_ROUTER = web.AppKey("chat_router", ChatRouter)
CHAT_HUB = web.AppKey("chat_hub", SocketHub)
CHAT_LIMITS = web.AppKey("chat_limits", ChatLimits)
CHAT_FANOUT = web.AppKey("chat_fanout", ChatFanout)
USER_FRAMES = web.AppKey("user_frames", UserFrames)
"""Frames for a user's sockets on every instance (`handlers/user_frames.py`)."""
READINESS_CHECKS = web.AppKey("readiness_checks", dict[str, ReadinessCheck])
METRICS_COLLECTORS = web.AppKey("metrics_collectors", list[Callable[[], None]])
"""Run before each /metrics scrape: components that count in plain ints copy them over."""
INTEGRATIONS = web.AppKey("integrations", IntegrationService)
WHATSAPP_SETUP = web.AppKey("whatsapp_setup", WhatsAppSetup)
WHATSAPP_INBOX = web.AppKey("whatsapp_inbox", WhatsAppInbox)
WHATSAPP_METRICS = web.AppKey("whatsapp_metrics", WhatsAppMetrics)
WHATSAPP_LEDGER = web.AppKey("whatsapp_ledger", SendLedger)
WHATSAPP_GRAPH = web.AppKey("whatsapp_graph", GraphClient)
WHATSAPP_TEMPLATES = web.AppKey("whatsapp_templates", TemplateBook)
# The assistant (issue 12).
ASSISTANT = web.AppKey("assistant", AssistantService)
KNOWLEDGE_BASE = web.AppKey("knowledge_base", KnowledgeBase)
ASSISTANT_METRICS = web.AppKey("assistant_metrics", AssistantMetrics)
ASSISTANT_LLM = web.AppKey("assistant_llm", LlmFallback)
ASSISTANT_ANNOUNCER = web.AppKey("assistant_announcer", ModeAnnouncer)
ASSISTANT_INBOUND = web.AppKey("assistant_inbound", AssistantInbound)
# The agent console (issue 14): the built page and assets, None when it was not built.
CONSOLE_BUILD = web.AppKey[ConsoleBuild | None]("console_build")
PAYMENTS = web.AppKey("payments", PaymentStore)
PAYMENT_SAGAS = web.AppKey("payment_sagas", PaymentSagas)
PAYMENT_GATEWAYS = web.AppKey("payment_gateways", dict[str, GatewayFactory])
PAYMENT_METRICS = web.AppKey("payment_metrics", PaymentMetrics)
# The import pipeline (issue 11): the service the handlers call, and this instance's actors.
IMPORTS = web.AppKey("imports", ImportService)
IMPORT_PIPELINES = web.AppKey("import_pipelines", ImportPipelines)
