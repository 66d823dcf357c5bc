"""The dashboard end to end: a unit of work emits facts, the relay and consumer fold them, the API
shows them by role; re-published events change nothing."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import update

from handlers.keys import ANALYTICS, ANALYTICS_CONSUMER, DATABASE
from mitra import analytics as a
from mitra.db import Scope
from mitra.models import OutboxEvent, Role
from streams.analytics import AnalyticsConsumer
from tests.streams.conftest import eventually
from tests.support.api import Account, Api
from tests.support.book import add_customer, add_policy

URL = "/api/v1/analytics/dashboard"


async def tenant_id_of(api: Api, account: Account) -> uuid.UUID:
    _, me = await api.call("GET", "/api/v1/users/me", token=account.access_token, expect=200)
    return uuid.UUID(me["data"]["tenant_id"])


async def emit(api: Api, tenant_id: uuid.UUID, facts: list[tuple[str, a.AnalyticsFact]]) -> None:
    """What a domain service does: facts emitted in the unit of work that changes the data."""
    async with api.app[DATABASE].unit_of_work(Scope.tenant(tenant_id)) as uow:
        for event_type, fact in facts:
            a.emit_analytics(uow, event_type, fact)


async def dashboard(api: Api, account: Account, query: str = "") -> dict[str, Any]:
    _, body = await api.call("GET", URL + query, token=account.access_token, expect=200)
    return dict(body["data"])


async def until(api: Api, account: Account, metric: str, count: int) -> dict[str, Any]:
    async with asyncio.timeout(10):
        while True:
            data = await dashboard(api, account)
            if data["totals"][metric]["count"] >= count:
                return data
            await asyncio.sleep(0.05)


async def test_the_dashboard_shows_figures_from_events_by_role(api: Api) -> None:
    admin = await api.tenant()
    agent = await api.user(admin, Role.SENIOR_AGENT)
    other_agent = await api.user(admin, Role.JUNIOR_AGENT)
    holder = await api.register(admin.tenant_slug)
    stranger = await api.tenant()
    tenant = await tenant_id_of(api, admin)
    me = uuid.UUID(agent.user_id)
    await emit(
        api,
        tenant,
        [
            (a.MESSAGE_SENT, a.AnalyticsFact(agent_id=me, channel="app", direction="outbound")),
            (a.MESSAGE_SENT, a.AnalyticsFact(channel="whatsapp", direction="inbound")),
            (a.PAYMENT_CAPTURED, a.AnalyticsFact(agent_id=me, amount=Decimal("2500"))),
            (a.POLICY_CREATED, a.AnalyticsFact(agent_id=uuid.UUID(other_agent.user_id))),
        ],
    )

    tenant_view = await until(api, admin, a.POLICIES_CREATED, 1)
    assert tenant_view["scope"] == "tenant"
    assert tenant_view["totals"][a.MESSAGES] == {"count": 2, "amount": None}
    assert tenant_view["totals"][a.PAYMENTS_CAPTURED] == {"count": 1, "amount": "2500.00"}
    assert tenant_view["breakdown"][a.MESSAGES] == {
        "app/outbound": {"count": 1, "amount": None},
        "whatsapp/inbound": {"count": 1, "amount": None},
    }
    today = api.app[ANALYTICS].today()
    assert tenant_view["to"] == today.isoformat()
    assert tenant_view["from"] == (today - timedelta(days=30)).isoformat()
    assert [d["day"] for d in tenant_view["series"]] == [today.isoformat()]

    own = await dashboard(api, agent)
    assert (own["scope"], own["agent_id"]) == ("agent", agent.user_id)
    assert own["totals"][a.MESSAGES]["count"] == 1
    assert own["totals"][a.PAYMENTS_CAPTURED]["amount"] == "2500.00"
    assert own["totals"][a.POLICIES_CREATED]["count"] == 0
    theirs = await dashboard(api, other_agent)
    assert theirs["totals"][a.POLICIES_CREATED]["count"] == 1
    assert theirs["totals"][a.MESSAGES]["count"] == 0

    elsewhere = await dashboard(api, stranger)
    assert all(figure["count"] == 0 for figure in elsewhere["totals"].values())
    status, body = await api.call("GET", URL, token=holder.access_token)
    assert (status, body["success"]) == (403, False)
    status, _ = await api.call("GET", URL)
    assert status == 401

    # The relay publishes the same events again (as after a crash before marking): same figures.
    async with api.app[DATABASE].transaction(Scope.system()) as session:
        await session.execute(update(OutboxEvent).values(published_at=None))
    api.app[DATABASE].notify_events_committed()
    consumer = api.app[ANALYTICS_CONSUMER]
    await eventually(lambda: duplicates(consumer) == 4)
    assert await dashboard(api, admin) == tenant_view
    metrics = await scrape(api)
    for name in (
        "mitra_outbox_backlog",
        "mitra_outbox_published_total",
        "mitra_analytics_events_total",
        "mitra_streams_consumer_lag",
    ):
        assert name in metrics, name
    # The consumer's commits are counted under their own purpose: per batch, not per event.
    [commits] = [
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("mitra_db_commits_total{") and 'purpose="analytics"' in line
    ]
    assert 1 <= commits <= 4, commits  # eight events: one commit each before


def duplicates(consumer: AnalyticsConsumer) -> int:
    total = 0
    for labels, count in consumer.events.get_all():
        if labels["outcome"] == "duplicate":
            total += int(count)  # type: ignore[arg-type]
    return total


async def scrape(api: Api) -> str:
    response = await api.client.get("/metrics")
    assert response.status == 200
    return await response.text()


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?from=yesterday", "from"),
        ("?to=2025-02-30", "to"),
        ("?from=2025-03-02&to=2025-03-01", "from"),
        ("?from=2024-01-01&to=2025-03-01", "from"),
        ("?days=7", "days"),
    ],
)
async def test_bad_query_parameters_are_422_naming_the_field(
    api: Api, query: str, field: str
) -> None:
    admin = await api.tenant()
    status, body = await api.call("GET", URL + query, token=admin.access_token)
    assert status == 422, body
    assert [e["field"] for e in body["errors"]] == [field]


async def test_a_range_of_366_days_is_allowed(api: Api) -> None:
    admin = await api.tenant()
    start = date(2024, 1, 1)
    end = start + timedelta(days=366)
    data = await dashboard(api, admin, f"?from={start}&to={end}")
    assert (data["from"], data["to"]) == (start.isoformat(), end.isoformat())
    assert data["series"] == []


async def test_policy_writes_through_the_api_reach_the_dashboard(api: Api) -> None:
    admin = await api.tenant()
    agent = await api.user(admin, Role.SENIOR_AGENT)
    customer = await add_customer(api, agent)
    policy = await add_policy(api, agent, customer, status="active")
    path = f"/api/v1/policies/{policy['id']}"
    for status in ("grace", "lapsed"):
        await api.call("PATCH", path, json={"status": status}, token=agent.access_token, expect=200)
    figures = await until(api, agent, a.POLICIES_LAPSED, 1)
    assert figures["totals"][a.POLICIES_CREATED]["count"] == 1
    assert figures["totals"][a.POLICIES_LAPSED]["count"] == 1
