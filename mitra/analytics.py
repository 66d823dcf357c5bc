"""Analytics: the facts domain services emit, how they fold into daily figures, and the dashboard.

Facts travel as outbox events on the `analytics.events` topic; the `analytics` consumer group
(`streams.analytics`) folds each delivered batch into `analytics_daily` in one transaction that
also records the batch's event ids, so a redelivered or replayed fact never counts twice. The
dashboard reads only those aggregates, never the domain tables, so its figures are exactly what
the events said.

A domain service emits a fact inside its own unit of work, with the data it describes:

    async with database.unit_of_work(Scope.tenant(tenant_id)) as uow:
        ...  # write the payment
        emit_analytics(uow, PAYMENT_CAPTURED, AnalyticsFact(agent_id=agent, amount=amount))
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Executable, Numeric, Table, func, select, type_coerce
from sqlalchemy.orm import Session

from mitra.auth.principal import Principal
from mitra.db import ConflictInsert, Database, Scope, UnitOfWork, prebuilt_upsert, utcnow
from mitra.errors import Forbidden, InvalidInput
from mitra.models import NO_AGENT, AnalyticsDaily, Role
from mitra.settings import AnalyticsSettings

TOPIC = "analytics.events"
"""The topic analytics facts are emitted to (`streams.topics.ANALYTICS_EVENTS`), keyed by tenant."""

# The event types the consumer counts; any other type is counted as ignored, never an error.
MESSAGE_SENT = "message.sent"
MESSAGE_FAILED = "message.failed"  # a channel refused it for good (WhatsApp, with Meta's code)
CONVERSATION_OPENED = "conversation.opened"
PAYMENT_CAPTURED = "payment.captured"
PAYMENT_FAILED = "payment.failed"
PAYMENT_REFUNDED = "payment.refunded"  # a refund the gateway processed (its amount)
IMPORT_FINISHED = "import.finished"
POLICY_CREATED = "policy.created"
POLICY_STATUS_CHANGED = "policy.status_changed"
BOT_REPLIED = "bot.replied"  # the assistant answered a customer (issue 12)
BOT_ESCALATED = "bot.escalated"  # the assistant handed a customer to their agent

# The figures the dashboard shows; `amount` is meaningful for the payment ones only.
MESSAGES = "messages"  # dimension: "<channel>/<direction>"
MESSAGES_FAILED = "messages_failed"  # dimension: "<channel>/<error code>"
CONVERSATIONS_OPENED = "conversations_opened"  # dimension: channel
PAYMENTS_CAPTURED = "payments_captured"  # dimension: currency, or "<gateway>/<currency>"
PAYMENTS_FAILED = "payments_failed"  # dimension: currency, or "<gateway>/<currency>"
PAYMENTS_REFUNDED = "payments_refunded"  # dimension: "<gateway>/<currency>"
IMPORTS_FINISHED = "imports_finished"
IMPORT_ROWS = "import_rows"  # dimension: "imported" or "failed"
POLICIES_CREATED = "policies_created"
POLICIES_LAPSED = "policies_lapsed"
BOT_REPLIES = "bot_replies"  # dimension: source (rule, kb, llm, fallback)
BOT_ESCALATIONS = "bot_escalations"  # dimension: reason
METRICS = (
    MESSAGES,
    MESSAGES_FAILED,
    CONVERSATIONS_OPENED,
    PAYMENTS_CAPTURED,
    PAYMENTS_FAILED,
    PAYMENTS_REFUNDED,
    IMPORTS_FINISHED,
    IMPORT_ROWS,
    POLICIES_CREATED,
    POLICIES_LAPSED,
    BOT_REPLIES,
    BOT_ESCALATIONS,
)
AMOUNT_METRICS = frozenset({PAYMENTS_CAPTURED, PAYMENTS_FAILED, PAYMENTS_REFUNDED})

MAX_RANGE_DAYS = 366
DEFAULT_RANGE_DAYS = 30
CENT = Decimal("0.01")


class AnalyticsFact(BaseModel):
    """The payload of an analytics event; which fields matter depends on the event type.

    `agent_id` is the agent the fact is credited to, when there is one (their dashboard shows
    it); `amount` travels as a decimal string; `rows`/`failed_rows` describe a finished import;
    `to_status` a policy's new status (`lapsed` is counted).
    """

    # Emitters attach context (policy ids, numbers) for other readers; the fold uses only these.
    model_config = ConfigDict(frozen=True, extra="ignore")

    agent_id: uuid.UUID | None = None
    channel: str | None = Field(None, min_length=1, max_length=30)
    direction: Literal["inbound", "outbound"] | None = None
    amount: Decimal | None = Field(None, ge=0, max_digits=14, decimal_places=2)
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$")
    rows: int | None = Field(None, ge=0)
    failed_rows: int | None = Field(None, ge=0)
    to_status: str | None = Field(None, max_length=30)
    error_code: int | None = None
    source: str | None = Field(None, min_length=1, max_length=30)
    reason: str | None = Field(None, min_length=1, max_length=30)
    gateway: str | None = Field(None, min_length=1, max_length=16)  # payments: which gateway


def emit_analytics(
    uow: UnitOfWork, event_type: str, fact: AnalyticsFact, *, tenant_id: uuid.UUID | None = None
) -> uuid.UUID:
    """Queue an analytics fact in `uow`'s transaction; it is published after commit."""
    owner = tenant_id or uow.scope.tenant_id
    if owner is None:
        raise ValueError("an analytics fact needs a tenant: pass tenant_id in a system scope")
    payload = fact.model_dump(mode="json", exclude_none=True)
    return uow.emit(TOPIC, str(owner), event_type, payload, tenant_id=owner)


@dataclass(frozen=True)
class Increment:
    """What one fact adds to one figure."""

    metric: str
    dimension: str = ""
    count: int = 1
    amount: Decimal = Decimal("0.00")


def _need(event_type: str, name: str, value: object) -> None:
    if value is None:
        raise InvalidInput.for_field(name, f"{event_type} needs {name}")


def _message(fact: AnalyticsFact) -> list[Increment]:
    _need(MESSAGE_SENT, "channel", fact.channel)
    _need(MESSAGE_SENT, "direction", fact.direction)
    return [Increment(MESSAGES, f"{fact.channel}/{fact.direction}")]


def _message_failed(fact: AnalyticsFact) -> list[Increment]:
    _need(MESSAGE_FAILED, "channel", fact.channel)
    code = "" if fact.error_code is None else str(fact.error_code)
    return [Increment(MESSAGES_FAILED, f"{fact.channel}/{code}")]


def _conversation(fact: AnalyticsFact) -> list[Increment]:
    return [Increment(CONVERSATIONS_OPENED, fact.channel or "")]


def _payment(metric: str) -> Callable[[AnalyticsFact], list[Increment]]:
    def rule(fact: AnalyticsFact) -> list[Increment]:
        if fact.amount is None:
            raise InvalidInput.for_field("amount", f"{metric} needs amount")
        currency = fact.currency or "INR"
        dimension = f"{fact.gateway}/{currency}" if fact.gateway else currency
        return [Increment(metric, dimension, amount=fact.amount.quantize(CENT))]

    return rule


def _import(fact: AnalyticsFact) -> list[Increment]:
    if fact.rows is None:
        raise InvalidInput.for_field("rows", f"{IMPORT_FINISHED} needs rows")
    failed = fact.failed_rows or 0
    if failed > fact.rows:
        raise InvalidInput.for_field("failed_rows", "failed_rows exceeds rows")
    return [
        Increment(IMPORTS_FINISHED),
        Increment(IMPORT_ROWS, "imported", count=fact.rows - failed),
        Increment(IMPORT_ROWS, "failed", count=failed),
    ]


def _policy_created(fact: AnalyticsFact) -> list[Increment]:
    return [Increment(POLICIES_CREATED)]


def _policy_status(fact: AnalyticsFact) -> list[Increment]:
    _need(POLICY_STATUS_CHANGED, "to_status", fact.to_status)
    return [Increment(POLICIES_LAPSED)] if fact.to_status == "lapsed" else []


def _bot_replied(fact: AnalyticsFact) -> list[Increment]:
    _need(BOT_REPLIED, "source", fact.source)
    return [Increment(BOT_REPLIES, fact.source or "")]


def _bot_escalated(fact: AnalyticsFact) -> list[Increment]:
    return [Increment(BOT_ESCALATIONS, fact.reason or "")]


_RULES: dict[str, Callable[[AnalyticsFact], list[Increment]]] = {
    MESSAGE_SENT: _message,
    MESSAGE_FAILED: _message_failed,
    CONVERSATION_OPENED: _conversation,
    PAYMENT_CAPTURED: _payment(PAYMENTS_CAPTURED),
    PAYMENT_FAILED: _payment(PAYMENTS_FAILED),
    PAYMENT_REFUNDED: _payment(PAYMENTS_REFUNDED),
    IMPORT_FINISHED: _import,
    POLICY_CREATED: _policy_created,
    POLICY_STATUS_CHANGED: _policy_status,
    BOT_REPLIED: _bot_replied,
    BOT_ESCALATED: _bot_escalated,
}


def increments(event_type: str, fact: AnalyticsFact) -> list[Increment]:
    """The figures a fact moves; empty for types not counted. Raises `InvalidInput` when a
    counted type lacks a field it needs (a producer bug: retrying will not fix it)."""
    rule = _RULES.get(event_type)
    return rule(fact) if rule else []


EVENT_TYPES = frozenset(_RULES)


Cell = tuple[uuid.UUID, date, uuid.UUID, str, str]
"""(tenant, day, agent_key, metric, dimension): what one `analytics_daily` row counts."""

_DAILY: Table = AnalyticsDaily.__table__  # type: ignore[assignment]
_CELL = ("tenant_id", "day", "agent_key", "metric", "dimension")


class Deltas:
    """What a batch of facts adds to the figures, merged per cell in memory.

    However many facts a batch holds, each cell it touches is written once (`fold`).
    """

    def __init__(self) -> None:
        self.cells: dict[Cell, list[Any]] = {}  # cell -> [count, amount]

    def add(
        self,
        tenant_id: uuid.UUID,
        day: date,
        agent_id: uuid.UUID | None,
        changes: list[Increment],
    ) -> None:
        agent_key = agent_id or NO_AGENT
        for change in changes:
            if change.count == 0 and not change.amount:
                continue
            cell = (tenant_id, day, agent_key, change.metric, change.dimension)
            tally = self.cells.get(cell)
            if tally is None:
                self.cells[cell] = [change.count, change.amount]
            else:
                tally[0] += change.count
                tally[1] += change.amount

    def __len__(self) -> int:
        return len(self.cells)


def fold(session: Session, deltas: Deltas) -> None:
    """Add `deltas` to the figures inside the caller's transaction (the consumer's, which also
    records the event ids): one upsert per cell, sent as one executemany."""
    if not deltas.cells:
        return
    now = utcnow()
    rows = [
        {
            "id": uuid.uuid4(),
            "tenant_id": tenant_id,
            "day": day,
            # The nil key stands for no agent; agent_id itself stays NULL for readers.
            "agent_id": None if agent_key == NO_AGENT else agent_key,
            "agent_key": agent_key,
            "metric": metric,
            "dimension": dimension,
            "count": count,
            "amount": amount,
            "created_at": now,
            "updated_at": now,
        }
        # Sorted, so that two consumers folding overlapping cells (a rebalance) lock the rows
        # in the same order on PostgreSQL and wait for each other instead of deadlocking.
        for (tenant_id, day, agent_key, metric, dimension), (count, amount) in sorted(
            deltas.cells.items()
        )
    ]
    session.execute(prebuilt_upsert(session, _DAILY, _add_to_cells), rows)


def _add_to_cells(insert: ConflictInsert) -> Executable:
    return insert.on_conflict_do_update(
        index_elements=list(_CELL),
        set_={
            "count": _DAILY.c.count + insert.excluded.count,
            "amount": _DAILY.c.amount + insert.excluded.amount,
            "updated_at": insert.excluded.updated_at,
        },
    )


@dataclass
class Figure:
    """A count and an amount (the amount is None for metrics that have none)."""

    count: int = 0
    amount: Decimal | None = None

    def add(self, count: int, amount: Decimal | None) -> None:
        self.count += count
        if amount is not None:
            self.amount = (self.amount or Decimal("0.00")) + amount


@dataclass
class Dashboard:
    """A tenant's (or one agent's) figures over a range of days, in the analytics time zone."""

    start: date
    end: date
    timezone: str
    agent_id: uuid.UUID | None
    totals: dict[str, Figure] = field(default_factory=dict)
    breakdown: dict[str, dict[str, Figure]] = field(default_factory=dict)
    series: dict[date, dict[str, Figure]] = field(default_factory=dict)


class AnalyticsService:
    """Reads the dashboard figures; the role rules on who sees what live here."""

    def __init__(self, database: Database, settings: AnalyticsSettings) -> None:
        self._db = database
        self.zone = ZoneInfo(settings.timezone)
        self.timezone = settings.timezone

    def day_of(self, moment: datetime) -> date:
        """The calendar day `moment` falls on in the analytics time zone."""
        return moment.astimezone(self.zone).date()

    def today(self) -> date:
        return datetime.now(self.zone).date()

    def resolve_range(self, start: date | None, end: date | None) -> tuple[date, date]:
        """Defaults (the last 30 days up to today) and limits; errors name `from` or `to`."""
        end = end or self.today()
        start = start or end - timedelta(days=DEFAULT_RANGE_DAYS)
        if start > end:
            raise InvalidInput.for_field("from", "from must not be after to")
        if (end - start).days > MAX_RANGE_DAYS:
            raise InvalidInput.for_field("from", f"the range is at most {MAX_RANGE_DAYS} days")
        return start, end

    async def dashboard(
        self, principal: Principal, start: date | None = None, end: date | None = None
    ) -> Dashboard:
        """Admins see their tenant's figures, agents their own; policyholders none at all."""
        if principal.role is Role.POLICYHOLDER:
            raise Forbidden("the dashboard is for agents and admins")
        start, end = self.resolve_range(start, end)
        agent_id = principal.user_id if principal.role.is_agent else None
        amount = type_coerce(func.sum(AnalyticsDaily.amount), Numeric(14, 2))
        query = (
            select(
                AnalyticsDaily.day,
                AnalyticsDaily.metric,
                AnalyticsDaily.dimension,
                func.sum(AnalyticsDaily.count),
                amount,
            )
            .where(
                AnalyticsDaily.tenant_id == principal.tenant_id,
                AnalyticsDaily.day >= start,
                AnalyticsDaily.day <= end,
            )
            .group_by(AnalyticsDaily.day, AnalyticsDaily.metric, AnalyticsDaily.dimension)
            .order_by(AnalyticsDaily.day)
        )
        if agent_id is not None:
            query = query.where(AnalyticsDaily.agent_id == agent_id)
        async with self._db.session(Scope.tenant(principal.tenant_id)) as session:
            rows = (await session.execute(query)).all()
        board = Dashboard(start, end, self.timezone, agent_id)
        for metric in METRICS:
            board.totals[metric] = _empty(metric)
        for day, metric, dimension, summed, total in rows:
            value = Decimal(str(total or 0)).quantize(CENT) if metric in AMOUNT_METRICS else None
            count = int(summed or 0)
            board.totals.setdefault(metric, _empty(metric)).add(count, value)
            if dimension:
                board.breakdown.setdefault(metric, {}).setdefault(dimension, _empty(metric)).add(
                    count, value
                )
            board.series.setdefault(day, {}).setdefault(metric, _empty(metric)).add(count, value)
        return board


def _empty(metric: str) -> Figure:
    return Figure(0, Decimal("0.00") if metric in AMOUNT_METRICS else None)
