"""Policies through the HTTP API: lifecycle, money, validation, listing, dashboard and events."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from handlers.keys import DATABASE
from mitra.db import Scope
from mitra.models import OutboxEvent, Role
from mitra.policies import TRANSITIONS
from mitra.records import india_today
from tests.support.api import Account, Api
from tests.support.book import add_customer, add_policy, policy_body

POLICIES = "/api/v1/policies"


async def _agent_with_customer(api: Api) -> tuple[Account, Account, dict[str, Any]]:
    admin = await api.tenant()
    agent = await api.user(admin, Role.SENIOR_AGENT)
    customer = await add_customer(api, agent)
    return admin, agent, customer


async def _events(api: Api, event_type: str) -> list[OutboxEvent]:
    async with api.app[DATABASE].session(Scope.system()) as session:
        rows = await session.scalars(
            select(OutboxEvent).where(OutboxEvent.event_type == event_type).order_by(OutboxEvent.id)
        )
        return list(rows)


async def test_create_read_and_money_as_strings(api: Api) -> None:
    _, agent, customer = await _agent_with_customer(api)
    body = policy_body(customer, premium_amount=1234.5, sum_assured="1000000")
    _, created = await api.call("POST", POLICIES, json=body, token=agent.access_token, expect=201)
    policy = created["data"]
    assert policy["premium_amount"] == "1234.50"
    assert policy["sum_assured"] == "1000000.00"
    assert policy["customer"]["phone"] == "+919876543210"
    assert policy["allowed_transitions"] == ["grace", "matured", "surrendered"]
    assert policy["created_by"] == agent.user_id
    _, read = await api.call(
        "GET", f"{POLICIES}/{policy['id']}", token=agent.access_token, expect=200
    )
    assert read["data"]["premium_amount"] == "1234.50"
    assert read["data"]["policy_number"] == body["policy_number"]


async def test_large_amounts_keep_every_paisa(api: Api) -> None:
    _, agent, customer = await _agent_with_customer(api)
    body = policy_body(customer, sum_assured="999999999999.99", premium_amount="0.01")
    _, created = await api.call("POST", POLICIES, json=body, token=agent.access_token, expect=201)
    _, read = await api.call(
        "GET", f"{POLICIES}/{created['data']['id']}", token=agent.access_token, expect=200
    )
    assert read["data"]["sum_assured"] == "999999999999.99"
    assert read["data"]["premium_amount"] == "0.01"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"premium_amount": "-100"}, "premium_amount"),
        ({"premium_amount": 0}, "premium_amount"),
        ({"premium_amount": "12.345"}, "premium_amount"),
        ({"premium_amount": "lots"}, "premium_amount"),
        ({"sum_assured": "1000000000000.00"}, "sum_assured"),
        ({"policy_type": "car"}, "policy_type"),
        ({"premium_frequency": "weekly"}, "premium_frequency"),
        ({"status": "cancelled"}, "status"),
        ({"maturity_date": "2001-01-01", "start_date": "2020-01-01"}, "maturity_date"),
        ({"next_due_date": "2019-12-31", "start_date": "2020-01-01"}, "next_due_date"),
        ({"start_date": "not a date"}, "start_date"),
        ({"policy_number": ""}, "policy_number"),
        ({"policy_number": "   "}, "policy_number"),
        ({"customer_id": "not-a-uuid"}, "customer_id"),
        ({"customer_id": "00000000-0000-0000-0000-000000000000"}, "customer_id"),
        ({"colour": "blue"}, "colour"),
    ],
)
async def test_bad_input_names_the_field(api: Api, change: dict[str, Any], field: str) -> None:
    _, agent, customer = await _agent_with_customer(api)
    status, body = await api.call(
        "POST", POLICIES, json=policy_body(customer, **change), token=agent.access_token
    )
    assert status == 422, body
    assert field in {error["field"] for error in body["errors"]}


async def test_missing_fields_are_each_named(api: Api) -> None:
    _, agent, _ = await _agent_with_customer(api)
    status, body = await api.call("POST", POLICIES, json={}, token=agent.access_token)
    assert status == 422
    named = {error["field"] for error in body["errors"]}
    assert {"policy_number", "customer_id", "premium_amount", "start_date"} <= named


async def test_duplicate_policy_number_is_409_within_a_tenant_only(api: Api) -> None:
    admin, agent, customer = await _agent_with_customer(api)
    first = await add_policy(api, agent, customer, policy_number="LIC-1")
    status, body = await api.call(
        "POST",
        POLICIES,
        json=policy_body(customer, policy_number="LIC-1"),
        token=agent.access_token,
    )
    assert status == 409
    assert body["errors"][0]["field"] == "policy_number"
    # Deleted numbers stay taken, so restoring can never collide.
    await api.call("DELETE", f"{POLICIES}/{first['id']}", token=admin.access_token, expect=200)
    await api.call(
        "POST",
        POLICIES,
        json=policy_body(customer, policy_number="LIC-1"),
        token=agent.access_token,
        expect=409,
    )
    second = await add_policy(api, agent, customer, policy_number="LIC-2")
    await api.call(
        "PATCH",
        f"{POLICIES}/{second['id']}",
        json={"policy_number": "LIC-1"},
        token=agent.access_token,
        expect=409,
    )
    other_admin = await api.tenant()
    other_agent = await api.user(other_admin, Role.SENIOR_AGENT)
    other_customer = await add_customer(api, other_agent)
    await add_policy(api, other_agent, other_customer, policy_number="LIC-1")


async def test_lifecycle_follows_the_transition_table(api: Api) -> None:
    _, agent, customer = await _agent_with_customer(api)
    policy = await add_policy(api, agent, customer, status="pending")
    path = f"{POLICIES}/{policy['id']}"
    for target in ("active", "grace", "lapsed", "active", "grace", "active", "matured"):
        _, body = await api.call(
            "PATCH", path, json={"status": target}, token=agent.access_token, expect=200
        )
        assert body["data"]["status"] == target
    status, body = await api.call(
        "PATCH", path, json={"status": "active"}, token=agent.access_token
    )
    assert status == 409
    assert body["errors"][0]["field"] == "status"
    changes = await _events(api, "policy.status_changed")
    assert [(e.payload["from_status"], e.payload["to_status"]) for e in changes][:2] == [
        ("pending", "active"),
        ("active", "grace"),
    ]
    assert len(changes) == 7


@pytest.mark.parametrize(
    ("start", "target"),
    [
        (start, target)
        for start in TRANSITIONS
        for target in TRANSITIONS
        if target != start and target not in TRANSITIONS[start]
    ],
    ids=str,
)
async def test_every_impossible_transition_is_409(api: Api, start: Any, target: Any) -> None:
    _, agent, customer = await _agent_with_customer(api)
    policy = await add_policy(api, agent, customer, status=start.value)
    await api.call(
        "PATCH",
        f"{POLICIES}/{policy['id']}",
        json={"status": target.value},
        token=agent.access_token,
        expect=409,
    )
    body = policy_body(customer, status=target.value, policy_number=policy["policy_number"])
    await api.call(
        "PUT", f"{POLICIES}/{policy['id']}", json=body, token=agent.access_token, expect=409
    )


async def test_put_replaces_and_patch_changes_some(api: Api) -> None:
    _, agent, customer = await _agent_with_customer(api)
    policy = await add_policy(api, agent, customer)
    path = f"{POLICIES}/{policy['id']}"
    replacement = policy_body(customer, plan_name="Tech Term", policy_type="term")
    del replacement["maturity_date"]
    _, put = await api.call("PUT", path, json=replacement, token=agent.access_token, expect=200)
    assert put["data"]["plan_name"] == "Tech Term"
    assert put["data"]["maturity_date"] is None
    assert put["data"]["agent_id"] == agent.user_id
    await api.call("PUT", path, json={"plan_name": "x"}, token=agent.access_token, expect=422)
    _, patched = await api.call(
        "PATCH",
        path,
        json={"premium_amount": "999.9", "next_due_date": None},
        token=agent.access_token,
        expect=200,
    )
    assert patched["data"]["premium_amount"] == "999.90"
    assert patched["data"]["next_due_date"] is None
    assert patched["data"]["plan_name"] == "Tech Term"
    # A non-nullable field may be left out of a PATCH, but not set to null.
    status, body = await api.call("PATCH", path, json={"plan_name": None}, token=agent.access_token)
    assert (status, body["errors"][0]["field"]) == (422, "plan_name")
    start = put["data"]["start_date"]
    status, body = await api.call(
        "PATCH", path, json={"maturity_date": start}, token=agent.access_token
    )
    assert (status, body["errors"][0]["field"]) == (422, "maturity_date")
    updated = await _events(api, "policy.updated")
    assert updated[-1].payload["changed"] == ["next_due_date", "premium_amount"]


async def test_malformed_ids_are_404(api: Api) -> None:
    _, agent, _ = await _agent_with_customer(api)
    await api.call("GET", f"{POLICIES}/not-a-uuid", token=agent.access_token, expect=404)
    await api.call(
        "GET",
        f"{POLICIES}/00000000-0000-0000-0000-000000000000",
        token=agent.access_token,
        expect=404,
    )


async def test_writes_emit_events_in_the_same_transaction(api: Api) -> None:
    admin, agent, customer = await _agent_with_customer(api)
    policy = await add_policy(api, agent, customer)
    await api.call("DELETE", f"{POLICIES}/{policy['id']}", token=admin.access_token, expect=200)
    await api.call(
        "POST", f"{POLICIES}/{policy['id']}/restore", token=admin.access_token, expect=200
    )
    (created,) = await _events(api, "policy.created")
    assert created.topic == "analytics.events"
    assert str(created.tenant_id) == created.key
    assert created.payload["policy_id"] == policy["id"]
    assert created.payload["premium_amount"] == "2450.50"
    assert created.payload["actor_id"] == agent.user_id
    assert len(await _events(api, "customer.created")) == 1
    assert len(await _events(api, "policy.deleted")) == 1
    assert len(await _events(api, "policy.restored")) == 1
    # A refused write leaves no event behind.
    await api.call(
        "POST",
        POLICIES,
        json=policy_body(customer, policy_number=policy["policy_number"]),
        token=agent.access_token,
        expect=409,
    )
    assert len(await _events(api, "policy.created")) == 1


async def test_soft_deleted_policies_leave_lists_and_come_back(api: Api) -> None:
    admin, agent, customer = await _agent_with_customer(api)
    policy = await add_policy(api, agent, customer)
    path = f"{POLICIES}/{policy['id']}"
    await api.call("DELETE", path, token=admin.access_token, expect=200)
    await api.call("DELETE", path, token=admin.access_token, expect=404)
    _, listed = await api.call("GET", POLICIES, token=admin.access_token, expect=200)
    assert listed["data"]["pagination"]["total"] == 0
    await api.call("PATCH", path, json={"plan_name": "x"}, token=admin.access_token, expect=404)
    _, restored = await api.call("POST", f"{path}/restore", token=admin.access_token, expect=200)
    assert restored["data"]["updated_by"] == admin.user_id
    await api.call("POST", f"{path}/restore", token=admin.access_token, expect=404)
    _, listed = await api.call("GET", POLICIES, token=agent.access_token, expect=200)
    assert [item["id"] for item in listed["data"]["items"]] == [policy["id"]]


async def _listing_fixture(api: Api) -> tuple[Account, Account, list[dict[str, Any]]]:
    admin = await api.tenant()
    agent = await api.user(admin, Role.SENIOR_AGENT)
    other = await api.user(admin, Role.SENIOR_AGENT)
    today = india_today()
    ravi = await add_customer(api, agent, full_name="Ravi Kumar", phone="98765 43210")
    sita = await add_customer(api, agent, full_name="Sita Devi", phone="+91-91234-56789")
    arjun = await add_customer(api, other, full_name="Arjun Rao", phone="099887 76655")
    policies = [
        await add_policy(
            api,
            agent,
            ravi,
            policy_number="A-100",
            premium_amount="500.00",
            policy_type="term",
            status="active",
            start_date=(today - timedelta(days=100)).isoformat(),
            next_due_date=(today + timedelta(days=5)).isoformat(),
        ),
        await add_policy(
            api,
            agent,
            sita,
            policy_number="B-200",
            premium_amount="1500.00",
            policy_type="health",
            status="grace",
            start_date=(today - timedelta(days=50)).isoformat(),
            next_due_date=(today - timedelta(days=3)).isoformat(),
        ),
        await add_policy(
            api,
            agent,
            ravi,
            policy_number="C-300",
            premium_amount="1000.00",
            policy_type="ulip",
            status="lapsed",
            start_date=(today - timedelta(days=10)).isoformat(),
            next_due_date=None,
        ),
        await add_policy(
            api,
            other,
            arjun,
            policy_number="D-400",
            premium_amount="750.00",
            policy_type="pension",
            status="pending",
            start_date=today.isoformat(),
            next_due_date=(today + timedelta(days=40)).isoformat(),
        ),
    ]
    return admin, agent, policies


async def _numbers(api: Api, token: str, query: str) -> list[str]:
    _, body = await api.call("GET", f"{POLICIES}?{query}", token=token, expect=200)
    return [item["policy_number"] for item in body["data"]["items"]]


async def test_filters_search_and_sort(api: Api) -> None:
    admin, agent, policies = await _listing_fixture(api)
    token = admin.access_token
    today = india_today()
    assert await _numbers(api, token, "status=grace") == ["B-200"]
    assert await _numbers(api, token, "policy_type=ulip") == ["C-300"]
    assert sorted(await _numbers(api, token, f"agent_id={agent.user_id}")) == [
        "A-100",
        "B-200",
        "C-300",
    ]
    ravi = policies[0]["customer_id"]
    assert await _numbers(api, token, f"customer_id={ravi}&sort=policy_number") == [
        "A-100",
        "C-300",
    ]
    due = (today + timedelta(days=5)).isoformat()
    assert await _numbers(api, token, f"due_before={due}&sort=next_due_date") == [
        "B-200",
        "A-100",
    ]
    window = f"date_from={(today - timedelta(days=60)).isoformat()}&date_to={today.isoformat()}"
    assert await _numbers(api, token, f"{window}&sort=start_date") == ["B-200", "C-300", "D-400"]
    assert await _numbers(api, token, "q=b-2") == ["B-200"]
    assert await _numbers(api, token, "q=sita") == ["B-200"]
    assert await _numbers(api, token, "q=ravi&sort=policy_number") == ["A-100", "C-300"]
    assert await _numbers(api, token, "q=91234") == ["B-200"]
    assert await _numbers(api, token, "q=099887%2076655") == ["D-400"]
    assert await _numbers(api, token, "q=%25") == []
    assert await _numbers(api, token, "sort=premium_amount") == [
        "A-100",
        "D-400",
        "C-300",
        "B-200",
    ]
    assert (await _numbers(api, token, "sort=-premium_amount"))[:1] == ["B-200"]
    assert (await _numbers(api, token, "sort=next_due_date"))[-1] == "C-300"
    assert (await _numbers(api, token, "sort=-next_due_date"))[-1] == "C-300"
    assert await _numbers(api, token, "sort=-created_at") == ["D-400", "C-300", "B-200", "A-100"]
    # Filters narrow what the role may see; they never widen it.
    assert await _numbers(api, agent.access_token, "q=arjun") == []


async def test_pagination(api: Api) -> None:
    admin, _, _ = await _listing_fixture(api)
    token = admin.access_token
    _, body = await api.call(
        "GET", f"{POLICIES}?limit=3&page=2&sort=policy_number", token=token, expect=200
    )
    assert [item["policy_number"] for item in body["data"]["items"]] == ["D-400"]
    assert body["data"]["pagination"] == {"page": 2, "limit": 3, "total": 4, "pages": 2}
    _, body = await api.call("GET", f"{POLICIES}?page=9", token=token, expect=200)
    assert body["data"]["items"] == []
    assert body["data"]["pagination"]["total"] == 4


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("page=0", "page"),
        ("page=first", "page"),
        ("sort=password", "sort"),
        ("sort=-customer_id", "sort"),
        ("status=dead", "status"),
        ("policy_type=car", "policy_type"),
        ("due_before=tomorrow", "due_before"),
        ("agent_id=42", "agent_id"),
        ("date_from=2024-02-01&date_to=2024-01-01", "date_to"),
        ("colour=blue", "colour"),
    ],
)
async def test_bad_listing_queries_name_the_parameter(api: Api, query: str, field: str) -> None:
    admin = await api.tenant()
    status, body = await api.call("GET", f"{POLICIES}?{query}", token=admin.access_token)
    assert status == 422, body
    assert body["errors"][0]["field"] == field


async def test_dashboard_for_an_agent_and_for_the_agency(api: Api) -> None:
    admin, agent, policies = await _listing_fixture(api)
    today = india_today()
    _, body = await api.call(
        "GET", f"{POLICIES}/agent-dashboard", token=agent.access_token, expect=200
    )
    mine = body["data"]
    assert mine["agent_id"] == agent.user_id
    assert mine["as_of"] == today.isoformat()
    assert mine["counts_by_status"] == {
        "pending": 0,
        "active": 1,
        "grace": 1,
        "lapsed": 1,
        "matured": 0,
        "surrendered": 0,
    }
    assert mine["due_soon"]["count"] == 1
    assert mine["due_soon"]["total_amount"] == "500.00"
    assert [item["policy_number"] for item in mine["due_soon"]["items"]] == ["A-100"]
    (grace,) = mine["in_grace"]
    assert grace["policy_number"] == "B-200"
    assert grace["customer_name"] == "Sita Devi"
    # Health premiums here are quarterly: 30 days of grace after the missed due date.
    assert grace["grace_ends_on"] == (today + timedelta(days=27)).isoformat()
    started_this_month = sum(
        1 for p in policies[:3] if p["start_date"] >= today.replace(day=1).isoformat()
    )
    assert mine["new_this_month"] == started_this_month

    _, body = await api.call(
        "GET", f"{POLICIES}/agent-dashboard", token=admin.access_token, expect=200
    )
    agency = body["data"]
    assert agency["agent_id"] is None
    assert sum(agency["counts_by_status"].values()) == 4
    assert agency["counts_by_status"]["pending"] == 1
    assert agency["new_this_month"] == started_this_month + 1
    # D-400 is due in 40 days: outside the 30-day window.
    assert agency["due_soon"]["count"] == 1


async def test_dashboard_adds_money_exactly(api: Api) -> None:
    _, agent, customer = await _agent_with_customer(api)
    soon = (india_today() + timedelta(days=1)).isoformat()
    for amount in ("0.10", "0.20", "1234567.89"):
        await add_policy(api, agent, customer, premium_amount=amount, next_due_date=soon)
    _, body = await api.call(
        "GET", f"{POLICIES}/agent-dashboard", token=agent.access_token, expect=200
    )
    assert body["data"]["due_soon"]["total_amount"] == "1234568.19"
