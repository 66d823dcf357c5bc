"""The demo book: what a tenant gets from `seed_book`, once, through the same services."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from aiohttp import web

from handlers.cli import main
from handlers.keys import CUSTOMERS, DATABASE, POLICIES
from mitra.demo_book import seed_book
from mitra.models import Role
from mitra.records import india_today
from tests.support.api import Api
from tests.unit.test_settings import PRODUCTION


async def test_a_tenant_gets_a_small_book_once(api: Api, app: web.Application) -> None:
    admin = await api.tenant()
    agent = await api.user(admin, Role.SENIOR_AGENT)
    holder = await api.register(admin.tenant_slug)

    book = await seed_book(app[DATABASE], app[CUSTOMERS], app[POLICIES], admin.tenant_slug)
    assert book is not None
    assert (book.customers, book.policies, book.conversations) == (20, 30, 3)

    _, customers = await api.call("GET", "/api/v1/customers?limit=100", token=agent.access_token)
    assert customers["data"]["pagination"]["total"] == 20
    _, board = await api.call("GET", "/api/v1/policies/agent-dashboard", token=agent.access_token)
    counts = board["data"]["counts_by_status"]
    assert sum(counts.values()) == 30
    assert counts["grace"] >= 3
    assert len({status for status, n in counts.items() if n}) == 6
    today = india_today()
    due = [date.fromisoformat(item["next_due_date"]) for item in board["data"]["due_soon"]["items"]]
    assert len(due) >= 5
    assert all((d.year, d.month) == (today.year, today.month) for d in due), due
    assert len(board["data"]["in_grace"]) == counts["grace"]

    # The policyholder's customer, and their conversation with the agent, with history.
    _, mine = await api.call("GET", "/api/v1/customers", token=holder.access_token)
    assert [c["user_id"] for c in mine["data"]["items"]] == [holder.user_id]
    _, chats = await api.call("GET", "/api/v1/conversations", token=holder.access_token)
    (chat,) = chats["data"]["items"]
    assert chat["last_seq"] >= 5
    assert set(chat["member_ids"]) == {agent.user_id, holder.user_id}
    _, agents = await api.call("GET", "/api/v1/conversations", token=agent.access_token)
    assert len(agents["data"]["items"]) == 3
    assert agents["data"]["items"][0]["id"] == chat["id"]  # the newest activity first

    again = await seed_book(app[DATABASE], app[CUSTOMERS], app[POLICIES], admin.tenant_slug)
    assert again is None
    _, customers = await api.call("GET", "/api/v1/customers", token=agent.access_token)
    assert customers["data"]["pagination"]["total"] == 20


def test_the_cli_seeds_a_named_tenant_and_refuses_production(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MITRA_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")
    assert main(["demo", "seed", "--tenant", "nowhere"]) == 1
    assert "no tenant nowhere" in capsys.readouterr().err

    for name, value in PRODUCTION.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MITRA_AUTH_JWT_SECRET", "j" * 48)
    assert main(["demo", "seed", "--tenant", "demo"]) == 2
    assert "refused in production" in capsys.readouterr().err
