"""Building blocks the record services share: pages, partial changes, audit and soft deletes."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, UnaryExpression, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Select

from mitra.errors import InvalidInput
from mitra.models import Role, User

T = TypeVar("T")

MAX_PAGE_SIZE = 100
# OFFSET is (page - 1) * limit, and the policy listing binds it as a 32-bit INTEGER: past this
# page it overflowed (500 on PostgreSQL). Two billion rows is more than any listing holds.
MAX_PAGE = (2**31 - 1) // MAX_PAGE_SIZE + 1
# Who may own a book: customers and policies belong to agents, not to admins.
AGENT_ROLES = frozenset({Role.SENIOR_AGENT, Role.JUNIOR_AGENT})
ANALYTICS_TOPIC = "analytics.events"
# The core writes to these through the outbox (`streams.topics` declares them for consumers).
CHAT_EVENTS_TOPIC = "chat.events"
WHATSAPP_OUTBOUND_TOPIC = "whatsapp.outbound"
# The import pipeline's topics: batches of clean rows, and the outcome of each written batch.
IMPORTS_ROWS_TOPIC = "imports.rows"
IMPORTS_RESULTS_TOPIC = "imports.results"

# India keeps one offset all year (no daylight saving), so a fixed zone is exact and needs no
# tz database in slim images. "Today" for due dates is the agents' today, not UTC's.
INDIA = timezone(timedelta(hours=5, minutes=30), "IST")


def india_today() -> date:
    return datetime.now(UTC).astimezone(INDIA).date()


class Unset(enum.Enum):
    """The marker of a field a partial update leaves alone (None would mean 'clear it')."""

    UNSET = "unset"


UNSET = Unset.UNSET


@dataclass(frozen=True)
class PageRequest:
    page: int = 1
    limit: int = 20

    def __post_init__(self) -> None:
        # The HTTP layer validates these too; services are also called from the CLI and actors.
        if not 1 <= self.page <= MAX_PAGE:
            raise InvalidInput.for_field("page", f"must be between 1 and {MAX_PAGE}")
        if not 1 <= self.limit <= MAX_PAGE_SIZE:
            raise InvalidInput.for_field("limit", f"must be between 1 and {MAX_PAGE_SIZE}")

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.limit


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing, with the total across all pages."""

    items: Sequence[T]
    page: int
    limit: int
    total: int

    @property
    def pages(self) -> int:
        return (self.total + self.limit - 1) // self.limit


async def fetch_page(
    session: AsyncSession,
    statement: Select[T],
    count: Select[int],
    order: Sequence[UnaryExpression[Any] | ColumnElement[Any]],
    request: PageRequest,
) -> Page[T]:
    """One query for the rows and one for the count: two round trips, whatever the page."""
    rows = await session.execute(
        statement.order_by(*order).limit(request.limit).offset(request.offset)
    )
    total = (await session.execute(count)).scalar_one()
    return Page(list(rows.unique().scalars()), request.page, request.limit, total)


def count_of(statement: Select[Any]) -> Select[int]:
    return select(func.count()).select_from(statement.order_by(None).subquery())


async def require_user(
    session: AsyncSession, user_id: uuid.UUID, roles: frozenset[Role], field: str, what: str
) -> User:
    """A user of the session's tenant in one of `roles`, or an error naming `field`."""
    user = await session.get(User, user_id)
    if user is None or user.role not in roles or not user.is_active:
        raise InvalidInput.for_field(field, f"no active {what} with this id in the agency")
    return user


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())
