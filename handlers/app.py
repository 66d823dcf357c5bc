"""The composition root: `create_app(settings)` builds the one application tests and servers run.

It lives in `handlers/` rather than `mitra/` because it wires aiohttp to every layer, and the
core must not import the HTTP layer (see the note in README's architecture section).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import aiohttp
from aiohttp import web
from aioprometheus.collectors import Registry

from actors import ActorSystem, RestartStrategy
from actors.assistant import AssistantParts, ModeAnnouncer
from actors.assistant_inbound import AssistantInbound
from actors.assistant_links import PremiumLinks
from actors.chat import ChatActors
from actors.chat_router import ChatRouter
from actors.imports import ImportPipelines
from actors.payment_sagas import CustomerMessages, PaymentSagas
from actors.whatsapp_inbound import WhatsAppInboundConsumer
from actors.whatsapp_sender import WhatsAppSender
from handlers import (
    analytics,
    assistant,
    asyncapi,
    auth,
    chat_ws,
    console,
    conversations,
    customers,
    docs,
    health,
    imports,
    integrations,
    payments,
    policies,
    users,
    whatsapp,
)
from handlers.chat_hub import SocketHub
from handlers.chat_metrics import ChatMetrics
from handlers.keys import (
    ACCOUNTS,
    ACTORS,
    ANALYTICS,
    ANALYTICS_CONSUMER,
    ASSISTANT,
    ASSISTANT_ANNOUNCER,
    ASSISTANT_INBOUND,
    ASSISTANT_LLM,
    ASSISTANT_METRICS,
    AUTH,
    CHAT,
    CHAT_FANOUT,
    CHAT_HUB,
    CHAT_LIMITS,
    CHAT_ROUTER,
    CONVERSATIONS,
    CUSTOMERS,
    DATABASE,
    HTTP_METRICS,
    IMPORT_PIPELINES,
    IMPORTS,
    INTEGRATIONS,
    KNOWLEDGE_BASE,
    MESSAGE_WRITER,
    METRICS,
    METRICS_COLLECTORS,
    METRICS_GUARD,
    NOTIFIER,
    OUTBOX,
    PASSWORD_HASHER,
    PAYMENT_GATEWAYS,
    PAYMENT_METRICS,
    PAYMENT_SAGAS,
    PAYMENTS,
    POLICIES,
    READINESS_CHECKS,
    SETTINGS,
    STREAMS,
    USER_FRAMES,
    WHATSAPP_GRAPH,
    WHATSAPP_INBOX,
    WHATSAPP_LEDGER,
    WHATSAPP_METRICS,
    WHATSAPP_SETUP,
    WHATSAPP_TEMPLATES,
    ReadinessCheck,
)
from handlers.metrics_access import MetricsGuard
from handlers.middlewares import MIDDLEWARES
from handlers.user_frames import UserFrames
from handlers.webhooks import payments as payment_webhooks
from handlers.webhooks import whatsapp as whatsapp_webhooks
from mitra import migrate
from mitra.accounts import AccountService
from mitra.analytics import AnalyticsService
from mitra.assistant import (
    AssistantMetrics,
    AssistantService,
    KnowledgeBase,
    LlmFallback,
    TokenBudget,
)
from mitra.assistant.llm import tenant_keys
from mitra.auth import (
    AuthService,
    Lockout,
    LogNotifier,
    Notifier,
    PasswordHasher,
    TokenCodec,
)
from mitra.auth.sessions import SessionCache
from mitra.chat import ChatLimits, ConversationService, MessageWriter
from mitra.customers import CustomerService
from mitra.db import Database
from mitra.imports import ImportService, ImportWriter, JobStore
from mitra.integrations import IntegrationService, SecretBox
from mitra.notifications.delivery import DeliveringNotifier
from mitra.notifications.sms import HttpSmsSender
from mitra.notifications.smtp import SmtpSender
from mitra.observability import HttpMetrics
from mitra.payments import PaymentStore
from mitra.payments.factories import gateway_factories
from mitra.payments.metrics import PaymentMetrics
from mitra.policies import PolicyService
from mitra.settings import Settings
from mitra.whatsapp.graph import GraphClient
from mitra.whatsapp.inbox import WhatsAppInbox
from mitra.whatsapp.ledger import SendLedger
from mitra.whatsapp.metrics import WhatsAppMetrics
from mitra.whatsapp.pacing import Backoff, SendPacer
from mitra.whatsapp.setup import WhatsAppSetup
from mitra.whatsapp.templates import TemplateBook
from streams import Streams
from streams.analytics import AnalyticsConsumer
from streams.auth_revocations import SessionRevocations
from streams.chat_fanout import ChatFanout
from streams.factory import streams_from_settings
from streams.outbox import OutboxRelay, RelayOptions
from streams.processed_pruning import ProcessedPruner

log = logging.getLogger("mitra.app")


def create_app(
    settings: Settings,
    *,
    notifier: Notifier | None = None,
    streams: Streams | None = None,
    hasher: PasswordHasher | None = None,
) -> web.Application:
    """Build the application; resources open in `cleanup_ctx`, in order, and close in reverse.

    `streams`, when given, is a started backend the caller owns (tests run two apps over one
    in-memory backend, as two instances share one Kafka cluster); otherwise the app makes its
    own from the settings. `hasher` replaces the password hasher the settings describe (tests
    watch how many hashes run at once through it).
    """
    app = web.Application(middlewares=MIDDLEWARES, client_max_size=settings.server.max_body_bytes)
    app[SETTINGS] = settings
    if streams is not None:
        app[STREAMS] = streams
    if notifier is not None:
        app[NOTIFIER] = notifier
    elif settings.notifier.backend == "log":
        app[NOTIFIER] = LogNotifier(production=settings.is_production)
    # One hasher, so one bound on concurrent hashes, for login, registration and profile changes.
    app[PASSWORD_HASHER] = hasher or PasswordHasher(settings.auth)
    app[CHAT_LIMITS] = ChatLimits(settings.chat)
    registry = Registry()
    app[METRICS] = registry
    app[HTTP_METRICS] = HttpMetrics(registry)
    app[METRICS_GUARD] = MetricsGuard(settings.metrics)
    app[READINESS_CHECKS] = {}
    app[METRICS_COLLECTORS] = [app[HTTP_METRICS].publish]
    app.cleanup_ctx.append(_notifications)
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_streams)
    app.cleanup_ctx.append(_auth_revocations)
    app.cleanup_ctx.append(_outbox)
    app.cleanup_ctx.append(_processed_pruner)
    app.cleanup_ctx.append(_analytics_consumer)
    app.cleanup_ctx.append(_actors)
    app.cleanup_ctx.append(_chat)
    app.cleanup_ctx.append(_whatsapp)
    # Payments before the assistant, which makes payment links through the sagas (and so
    # stops before them).
    app.cleanup_ctx.append(_payments)
    app.cleanup_ctx.append(_imports)
    app.cleanup_ctx.append(_assistant)
    app.on_shutdown.append(_close_sockets)
    for module in (
        health,
        auth,
        users,
        customers,
        policies,
        conversations,
        chat_ws,
        analytics,
        integrations,
        whatsapp_webhooks,
        whatsapp,
        assistant,
        payments,
        payment_webhooks,
        imports,
        asyncapi,
        docs,
        console,
    ):
        app.router.add_routes(module.routes)
    app.on_startup.append(docs.build_on_startup)
    app.on_startup.append(console.load_on_startup)
    return app


def add_readiness_check(app: web.Application, name: str, check: ReadinessCheck) -> None:
    app[READINESS_CHECKS][name] = check


async def _notifications(app: web.Application) -> AsyncIterator[None]:
    """Email and SMS that reach people (`notifier.backend = "deliver"`), sent in the background."""
    if NOTIFIER in app:
        yield
        return
    settings = app[SETTINGS].notifier
    session = aiohttp.ClientSession()
    delivering = DeliveringNotifier(
        SmtpSender(
            host=settings.smtp_host,
            port=settings.smtp_port,
            sender=settings.email_from,
            username=settings.smtp_username,
            password=settings.smtp_password,
            security=settings.smtp_security,
            ca_file=settings.smtp_ca_file,
            timeout=settings.timeout_seconds,
        ),
        HttpSmsSender(
            session,
            base_url=settings.sms_base_url,
            auth_key=settings.sms_auth_key,
            template_id=settings.sms_template_id,
            sender_id=settings.sms_sender_id,
            timeout=settings.timeout_seconds,
        ),
        app[METRICS],
        max_attempts=settings.max_attempts,
        backoff_seconds=settings.backoff_seconds,
    )
    delivering.start()
    app[NOTIFIER] = delivering
    yield
    await delivering.stop()
    await session.close()


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    database = Database(settings.database)
    database.metrics.register(app[METRICS])
    app[METRICS_COLLECTORS].append(database.metrics.publish)
    if database.is_sqlite and settings.database.auto_migrate:
        await migrate.upgrade(database)
    elif not await migrate.is_up_to_date(database):
        await database.dispose()
        raise RuntimeError("the database schema is not at the latest revision: run `mitra migrate`")
    hasher = app[PASSWORD_HASHER]
    app[DATABASE] = database
    # One lockout for login and for profile changes, so their wrong passwords add up.
    lockout = Lockout(settings.auth, app[NOTIFIER])
    auth = AuthService(
        database,
        settings.auth,
        hasher,
        TokenCodec(settings.auth),
        app[NOTIFIER],
        sessions=SessionCache(
            settings.auth.session_cache_seconds, settings.auth.session_cache_size
        ),
        lockout=lockout,
    )
    app[AUTH] = auth
    app[ACCOUNTS] = AccountService(
        database, settings.auth, hasher, sessions_revoked=auth.revoked_here, lockout=lockout
    )
    app[CUSTOMERS] = CustomerService(database)
    app[POLICIES] = PolicyService(database)
    app[ANALYTICS] = AnalyticsService(database, settings.analytics)
    app[CONVERSATIONS] = ConversationService(database)
    app[INTEGRATIONS] = IntegrationService(database, SecretBox(settings.integrations.secrets_key))
    app[WHATSAPP_SETUP] = WhatsAppSetup(database, app[INTEGRATIONS])
    app[WHATSAPP_INBOX] = WhatsAppInbox(database)
    app[WHATSAPP_METRICS] = WhatsAppMetrics(app[METRICS])
    app[WHATSAPP_LEDGER] = SendLedger(database)
    app[WHATSAPP_TEMPLATES] = TemplateBook(database)
    app[PAYMENTS] = PaymentStore(database, settings.payments.currency)
    app[PAYMENT_METRICS] = PaymentMetrics(app[METRICS])
    add_readiness_check(app, "database", database.ping)
    yield
    await database.dispose()


async def _streams(app: web.Application) -> AsyncIterator[None]:
    owned = STREAMS not in app
    if owned:
        app[STREAMS] = streams_from_settings(app[SETTINGS].streams, app[METRICS])
        # start() does not fail when a broker is down: it retries in the background and /ready
        # says so.
        await app[STREAMS].start()
    streams = app[STREAMS]
    app[METRICS_COLLECTORS].append(streams.metrics.publish)

    async def streams_ready() -> None:
        ok, detail = await streams.health()
        if not ok:
            raise ConnectionError(detail)

    add_readiness_check(app, "streams", streams_ready)
    yield
    if owned:
        await streams.stop()


async def _auth_revocations(app: web.Application) -> AsyncIterator[None]:
    """This instance's member of its own `auth.sessions` group: revoked sessions leave its
    session cache. Started before the relay, so this instance's own revocations are read too."""
    consumer = SessionRevocations(app[STREAMS], uuid.uuid4().hex, app[AUTH].revoked_elsewhere)
    await consumer.start()
    yield
    await consumer.stop()


async def _outbox(app: web.Application) -> AsyncIterator[None]:
    """The relay publishing committed outbox rows; woken by commits, polling for the rest."""
    options = RelayOptions.from_settings(app[SETTINGS].streams)
    relay = OutboxRelay(app[DATABASE], app[STREAMS], options, registry=app[METRICS])
    await relay.start()
    app[OUTBOX] = relay
    yield
    await relay.stop()


async def _processed_pruner(app: web.Application) -> AsyncIterator[None]:
    """Deletes consumers' processed event ids past the replay retention, in the background."""
    pruner = ProcessedPruner(app[DATABASE], app[SETTINGS].streams)
    pruner.start()
    yield
    await pruner.stop()


async def _analytics_consumer(app: web.Application) -> AsyncIterator[None]:
    """This instance's member of the `analytics` group, folding events into the dashboard."""
    if not app[SETTINGS].analytics.consumer_enabled:
        yield
        return
    consumer = AnalyticsConsumer(app[DATABASE], app[STREAMS], app[ANALYTICS], registry=app[METRICS])
    await consumer.start()
    app[ANALYTICS_CONSUMER] = consumer
    yield
    await consumer.stop()


async def _actors(app: web.Application) -> AsyncIterator[None]:
    """The actor system, the chat pools, the writer their messages are committed by, and the
    socket hub the writer hands committed messages to.

    On shutdown the actors drain first (their last messages still reach the writer), then the
    writer commits what is queued, then the relay and the streams behind it stop.
    """
    settings = app[SETTINGS]
    system = ActorSystem(
        registry=app[METRICS],
        strategy=RestartStrategy(
            max_restarts=settings.actors.restart_max,
            within_seconds=settings.actors.restart_window_seconds,
        ),
        shutdown_seconds=settings.server.shutdown_timeout_seconds,
    )
    await system.start()
    metrics = ChatMetrics(app[METRICS])
    app[METRICS_COLLECTORS].append(metrics.publish)
    hub = SocketHub(
        metrics,
        app[CONVERSATIONS].messages_since,
        recovery_page_size=settings.chat.recovery_page_size,
    )
    app[CHAT_HUB] = hub
    writer = MessageWriter(
        app[DATABASE],
        after_commit=app[DATABASE].notify_events_committed,
        on_committed=hub.deliver_committed,
    )
    writer.start()
    app[ACTORS] = system
    app[METRICS_COLLECTORS].append(system.metrics.publish)
    app[MESSAGE_WRITER] = writer
    app[CHAT] = ChatActors(system, app[CONVERSATIONS], writer, settings.actors)

    async def actors_ready() -> None:
        if not system.root.is_alive():
            raise RuntimeError("the root supervisor has stopped")

    add_readiness_check(app, "actors", actors_ready)
    yield
    await system.stop()
    await writer.stop()


async def _chat(app: web.Application) -> AsyncIterator[None]:
    """The router that finds each conversation's owner, and this instance's fan-out."""
    settings = app[SETTINGS]
    hub = app[CHAT_HUB]
    router = ChatRouter(
        app[CHAT],
        app[STREAMS],
        timeout=settings.actors.ask_timeout_seconds * 2,
        registry=app[METRICS],
    )
    fanout = ChatFanout(app[STREAMS], uuid.uuid4().hex, [hub.deliver, router.on_event])
    app[CHAT_ROUTER] = router
    app[CHAT_FANOUT] = fanout
    app[USER_FRAMES] = UserFrames(app[STREAMS])
    await fanout.start()
    await router.start()
    # A revoked session's sockets close with 4401: pushed at once, re-checked now and then.
    stop_listening = app[AUTH].add_revocation_listener(hub.close_sessions)
    watcher = asyncio.get_running_loop().create_task(
        hub.watch_sessions(app[AUTH].live_sessions, settings.chat.session_check_seconds),
        name="chat-session-watch",
    )
    yield
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watcher
    stop_listening()
    await router.stop()
    await fanout.stop()


async def _whatsapp(app: web.Application) -> AsyncIterator[None]:
    """This instance's members of `whatsapp-inbound` (customers' messages and Meta's statuses)
    and `whatsapp-outbound` (members' messages to customers), over one HTTP client session."""
    settings = app[SETTINGS].whatsapp
    session = aiohttp.ClientSession()
    app[WHATSAPP_GRAPH] = GraphClient(
        session,
        settings.graph_base_url,
        settings.graph_version,
        timeout_seconds=settings.request_timeout_seconds,
    )
    inbound = WhatsAppInboundConsumer(
        app[STREAMS],
        setup=app[WHATSAPP_SETUP],
        inbox=app[WHATSAPP_INBOX],
        router=app[CHAT_ROUTER],
        ledger=app[WHATSAPP_LEDGER],
        metrics=app[WHATSAPP_METRICS],
    )
    sender = WhatsAppSender(
        app[STREAMS],
        setup=app[WHATSAPP_SETUP],
        ledger=app[WHATSAPP_LEDGER],
        graph=app[WHATSAPP_GRAPH],
        pacer=SendPacer(settings.send_rate_per_second, settings.send_burst),
        metrics=app[WHATSAPP_METRICS],
        backoff=Backoff(
            settings.retry_base_seconds, settings.retry_cap_seconds, settings.retry_max_attempts
        ),
    )
    await inbound.start()
    await sender.start()
    yield
    await sender.stop()
    await inbound.stop()
    await session.close()


async def _assistant(app: web.Application) -> AsyncIterator[None]:
    """The assistant: its services for the API, and (when enabled) this instance's member of
    the `assistant` group with the actors that answer customers."""
    settings = app[SETTINGS].chatbot
    database = app[DATABASE]
    service = AssistantService(database, settings.default_mode)
    knowledge = KnowledgeBase(database)
    metrics = AssistantMetrics(app[METRICS])
    llm = LlmFallback(
        settings,
        TokenBudget(database, settings.daily_token_budget),
        metrics,
        tenant_keys(app[INTEGRATIONS], settings.model),
    )
    router = app[CHAT_ROUTER]
    frames = app[USER_FRAMES].send
    app[ASSISTANT] = service
    app[KNOWLEDGE_BASE] = knowledge
    app[ASSISTANT_METRICS] = metrics
    app[ASSISTANT_LLM] = llm
    app[ASSISTANT_ANNOUNCER] = ModeAnnouncer(router.send, frames)
    inbound = None
    if settings.enabled:
        parts = AssistantParts(
            service=service,
            settings=settings,
            send=router.send,
            metrics=metrics,
            knowledge=knowledge,
            llm=llm,
            frames=frames,
            links=PremiumLinks(
                app[PAYMENTS],
                app[PAYMENT_SAGAS],
                app[INTEGRATIONS],
                link_expiry=timedelta(minutes=app[SETTINGS].payments.link_expiry_minutes),
                timeout=settings.payment_link_timeout_seconds,
                outcome=metrics.payment_link,
            ),
            io_timeout=app[SETTINGS].actors.ask_timeout_seconds * 2,
        )
        inbound = AssistantInbound(app[STREAMS], app[ACTORS], parts)
        await inbound.start()
        app[ASSISTANT_INBOUND] = inbound
    yield
    if inbound is not None:
        await inbound.stop()
    await llm.close()


async def _payments(app: web.Application) -> AsyncIterator[None]:
    """The payment sagas' pool and this instance's member of `payments-saga`; unfinished
    sagas resume now, and the poller nudges those that heard nothing for too long."""
    settings = app[SETTINGS]
    gateways = gateway_factories(settings.payments)
    app[PAYMENT_GATEWAYS] = gateways
    sagas = PaymentSagas(
        app[ACTORS],
        app[STREAMS],
        store=app[PAYMENTS],
        integrations=app[INTEGRATIONS],
        gateways=gateways,
        messages=CustomerMessages(
            app[DATABASE], app[CONVERSATIONS], app[CHAT_ROUTER], app[USER_FRAMES].send
        ),
        settings=settings.payments,
        io_timeout=settings.actors.ask_timeout_seconds,
        observe=app[PAYMENT_METRICS].gateway_call,
        counts=app[PAYMENT_METRICS].saga_counts,
    )
    app[PAYMENT_SAGAS] = sagas
    await sagas.start()
    yield
    await sagas.stop()


async def _close_sockets(app: web.Application) -> None:
    """Open sockets close with GOING_AWAY before the rest shuts down; clients reconnect."""
    if CHAT_HUB in app:
        await app[CHAT_HUB].close_all()


async def _imports(app: web.Application) -> AsyncIterator[None]:
    """The import pipeline: the service, this instance's pipeline actors, which report
    progress to the uploading agent's sockets on every instance and resume imports whose
    instance died, and its member of the writers of `imports.rows`. Stopped before the actor
    system, so running imports hand on cleanly."""
    settings = app[SETTINGS].imports
    database = app[DATABASE]
    app[IMPORTS] = ImportService(database)
    pipelines = ImportPipelines(
        app[ACTORS],
        app[STREAMS],
        store=JobStore(database),
        writer=ImportWriter(database),
        settings=settings,
        send_frames=app[USER_FRAMES].send,
    )
    app[IMPORT_PIPELINES] = pipelines
    await pipelines.start()
    yield
    await pipelines.stop()
