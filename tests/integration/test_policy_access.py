"""The role matrix for policies and customers, and tenant isolation, on SQLite and PostgreSQL.

Each table reads: for a caller of this role, acting on the record in this book, the status.
404 means the record does not exist for the caller; 403 that they see it but may not do this.
"""

from __future__ import annotations

from typing import Any

import pytest

from mitra.models import Role
from tests.support.api import Api
from tests.support.book import Book, add_customer, customer_body, make_book, policy_body

ROLES = [
    Role.SUPER_ADMIN,
    Role.PROVIDER_ADMIN,
    Role.SENIOR_AGENT,
    Role.JUNIOR_AGENT,
    Role.POLICYHOLDER,
]
# Books: "senior" (holder's customer is in it), "junior", "other" (another senior agent's).
BOOKS = ("senior", "junior", "other")

READ = {
    Role.SUPER_ADMIN: {"senior": 200, "junior": 200, "other": 200},
    Role.PROVIDER_ADMIN: {"senior": 200, "junior": 200, "other": 200},
    Role.SENIOR_AGENT: {"senior": 200, "junior": 404, "other": 404},
    Role.JUNIOR_AGENT: {"senior": 404, "junior": 200, "other": 404},
    Role.POLICYHOLDER: {"senior": 200, "junior": 404, "other": 404},
}
UPDATE = {
    Role.SUPER_ADMIN: {"senior": 200, "junior": 200, "other": 200},
    Role.PROVIDER_ADMIN: {"senior": 200, "junior": 200, "other": 200},
    Role.SENIOR_AGENT: {"senior": 200, "junior": 404, "other": 404},
    Role.JUNIOR_AGENT: {"senior": 404, "junior": 200, "other": 404},
    Role.POLICYHOLDER: {"senior": 403, "junior": 404, "other": 404},
}
DELETE = {
    Role.SUPER_ADMIN: {"senior": 200, "junior": 200, "other": 200},
    Role.PROVIDER_ADMIN: {"senior": 200, "junior": 200, "other": 200},
    Role.SENIOR_AGENT: {"senior": 403, "junior": 404, "other": 404},
    Role.JUNIOR_AGENT: {"senior": 404, "junior": 403, "other": 404},
    Role.POLICYHOLDER: {"senior": 403, "junior": 404, "other": 404},
}
# Creating in the caller's own book, and in another agent's.
CREATE = {
    Role.SUPER_ADMIN: {"own": 201, "other": 201},
    Role.PROVIDER_ADMIN: {"own": 201, "other": 201},
    Role.SENIOR_AGENT: {"own": 201, "other": 403},
    Role.JUNIOR_AGENT: {"own": 403, "other": 403},
    Role.POLICYHOLDER: {"own": 403, "other": 403},
}
DASHBOARD = {
    Role.SUPER_ADMIN: 200,
    Role.PROVIDER_ADMIN: 200,
    Role.SENIOR_AGENT: 200,
    Role.JUNIOR_AGENT: 200,
    Role.POLICYHOLDER: 403,
}
LISTED = {
    Role.SUPER_ADMIN: {"senior", "junior", "other"},
    Role.PROVIDER_ADMIN: {"senior", "junior", "other"},
    Role.SENIOR_AGENT: {"senior"},
    Role.JUNIOR_AGENT: {"junior"},
    Role.POLICYHOLDER: {"senior"},
}


def _policy(book: Book, name: str) -> dict[str, Any]:
    return {"senior": book.policy, "junior": book.junior_policy, "other": book.other_policy}[name]


def _customer(book: Book, name: str) -> dict[str, Any]:
    return {
        "senior": book.customer,
        "junior": book.junior_customer,
        "other": book.other_customer,
    }[name]


@pytest.mark.parametrize("role", ROLES, ids=str)
async def test_reading_policies_and_customers(api: Api, role: Role) -> None:
    book = await make_book(api)
    caller = book.by_role(role)
    for name in BOOKS:
        expected = READ[role][name]
        await api.call(
            "GET",
            f"/api/v1/policies/{_policy(book, name)['id']}",
            token=caller.access_token,
            expect=expected,
        )
        await api.call(
            "GET",
            f"/api/v1/customers/{_customer(book, name)['id']}",
            token=caller.access_token,
            expect=expected,
        )


@pytest.mark.parametrize("role", ROLES, ids=str)
async def test_listing_shows_only_what_the_role_may_read(api: Api, role: Role) -> None:
    book = await make_book(api)
    caller = book.by_role(role)
    _, policies = await api.call("GET", "/api/v1/policies", token=caller.access_token, expect=200)
    listed = {item["id"] for item in policies["data"]["items"]}
    assert listed == {_policy(book, name)["id"] for name in LISTED[role]}
    assert policies["data"]["pagination"]["total"] == len(LISTED[role])
    _, customers = await api.call("GET", "/api/v1/customers", token=caller.access_token, expect=200)
    listed = {item["id"] for item in customers["data"]["items"]}
    assert listed == {_customer(book, name)["id"] for name in LISTED[role]}


@pytest.mark.parametrize("role", ROLES, ids=str)
async def test_updating_policies_and_customers(api: Api, role: Role) -> None:
    book = await make_book(api)
    caller = book.by_role(role)
    for name in BOOKS:
        expected = UPDATE[role][name]
        policy_id = _policy(book, name)["id"]
        _, body = await api.call(
            "PATCH",
            f"/api/v1/policies/{policy_id}",
            json={"plan_name": "Jeevan Labh"},
            token=caller.access_token,
            expect=expected,
        )
        if expected == 200:
            assert body["data"]["plan_name"] == "Jeevan Labh"
            assert body["data"]["updated_by"] == caller.user_id
        await api.call(
            "PATCH",
            f"/api/v1/customers/{_customer(book, name)['id']}",
            json={"address": "12 MG Road, Pune"},
            token=caller.access_token,
            expect=expected,
        )
        replacement = policy_body(_customer(book, name), plan_name="Jeevan Umang")
        await api.call(
            "PUT",
            f"/api/v1/policies/{policy_id}",
            json=replacement,
            token=caller.access_token,
            expect=expected,
        )


@pytest.mark.parametrize("role", ROLES, ids=str)
async def test_deleting_and_restoring(api: Api, role: Role) -> None:
    book = await make_book(api)
    caller = book.by_role(role)
    for name in BOOKS:
        expected = DELETE[role][name]
        policy_id = _policy(book, name)["id"]
        await api.call(
            "DELETE", f"/api/v1/policies/{policy_id}", token=caller.access_token, expect=expected
        )
        if expected == 200:
            await api.call(
                "GET", f"/api/v1/policies/{policy_id}", token=caller.access_token, expect=404
            )
            await api.call(
                "POST",
                f"/api/v1/policies/{policy_id}/restore",
                token=caller.access_token,
                expect=200,
            )
            await api.call(
                "GET", f"/api/v1/policies/{policy_id}", token=caller.access_token, expect=200
            )
        else:
            # Nothing happened: the admin still sees it.
            await api.call(
                "GET", f"/api/v1/policies/{policy_id}", token=book.admin.access_token, expect=200
            )
            await api.call(
                "POST",
                f"/api/v1/policies/{policy_id}/restore",
                token=caller.access_token,
                expect=404,
            )


@pytest.mark.parametrize("role", ROLES, ids=str)
async def test_creating_in_own_and_other_books(api: Api, role: Role) -> None:
    book = await make_book(api)
    caller = book.by_role(role)
    # Admins have no book of their own: "own" for them is the senior agent's, as they pick it.
    own_agent = book.senior if role.is_admin or role is Role.POLICYHOLDER else caller
    own_customer = book.junior_customer if role is Role.JUNIOR_AGENT else book.customer
    for target, agent, customer in (
        ("own", own_agent, own_customer),
        ("other", book.other_senior, book.other_customer),
    ):
        expected = CREATE[role][target]
        await api.call(
            "POST",
            "/api/v1/customers",
            json=customer_body(agent),
            token=caller.access_token,
            expect=expected,
        )
        status, body = await api.call(
            "POST",
            "/api/v1/policies",
            json=policy_body(customer, agent),
            token=caller.access_token,
        )
        assert status == expected, body
        if expected == 201:
            assert body["data"]["agent_id"] == agent.user_id
            assert body["data"]["created_by"] == caller.user_id


async def test_a_senior_agent_creates_for_themselves_by_default(api: Api) -> None:
    book = await make_book(api)
    body = policy_body(book.customer)
    _, created = await api.call(
        "POST", "/api/v1/policies", json=body, token=book.senior.access_token, expect=201
    )
    assert created["data"]["agent_id"] == book.senior.user_id


async def test_an_agent_cannot_hand_a_record_to_another_agent(api: Api) -> None:
    book = await make_book(api)
    await api.call(
        "PATCH",
        f"/api/v1/policies/{book.policy['id']}",
        json={"agent_id": book.other_senior.user_id},
        token=book.senior.access_token,
        expect=403,
    )
    await api.call(
        "PATCH",
        f"/api/v1/customers/{book.customer['id']}",
        json={"agent_id": book.other_senior.user_id},
        token=book.senior.access_token,
        expect=403,
    )
    _, moved = await api.call(
        "PATCH",
        f"/api/v1/policies/{book.policy['id']}",
        json={"agent_id": book.other_senior.user_id},
        token=book.admin.access_token,
        expect=200,
    )
    assert moved["data"]["agent_id"] == book.other_senior.user_id
    await api.call(
        "GET", f"/api/v1/policies/{book.policy['id']}", token=book.senior.access_token, expect=404
    )


async def test_an_agent_cannot_use_a_customer_outside_their_book(api: Api) -> None:
    book = await make_book(api)
    status, body = await api.call(
        "POST",
        "/api/v1/policies",
        json=policy_body(book.other_customer),
        token=book.senior.access_token,
    )
    assert status == 422
    assert body["errors"][0]["field"] == "customer_id"


@pytest.mark.parametrize("role", ROLES, ids=str)
async def test_dashboard_access(api: Api, role: Role) -> None:
    book = await make_book(api)
    await api.call(
        "GET",
        "/api/v1/policies/agent-dashboard",
        token=book.by_role(role).access_token,
        expect=DASHBOARD[role],
    )


async def test_another_tenants_records_are_404_for_everyone_there(api: Api) -> None:
    book = await make_book(api)
    stranger = await api.tenant()
    stranger_agent = await api.user(stranger, Role.SENIOR_AGENT)
    for caller in (stranger, stranger_agent):
        token = caller.access_token
        policy = f"/api/v1/policies/{book.policy['id']}"
        customer = f"/api/v1/customers/{book.customer['id']}"
        await api.call("GET", policy, token=token, expect=404)
        await api.call("PATCH", policy, json={"plan_name": "x"}, token=token, expect=404)
        await api.call("PUT", policy, json=policy_body(book.customer), token=token, expect=404)
        await api.call("DELETE", policy, token=token, expect=404)
        await api.call("POST", f"{policy}/restore", token=token, expect=404)
        await api.call("GET", customer, token=token, expect=404)
        await api.call("PATCH", customer, json={"address": "x"}, token=token, expect=404)
        await api.call("DELETE", customer, token=token, expect=404)
        await api.call("POST", f"{customer}/restore", token=token, expect=404)
        _, listed = await api.call("GET", "/api/v1/policies", token=token, expect=200)
        assert listed["data"]["items"] == []
        _, listed = await api.call("GET", "/api/v1/customers", token=token, expect=200)
        assert listed["data"]["items"] == []
    # Nor can a stranger point a new policy at this tenant's customer or agent.
    status, body = await api.call(
        "POST", "/api/v1/policies", json=policy_body(book.customer), token=stranger.access_token
    )
    assert (status, body["errors"][0]["field"]) == (422, "customer_id")
    own = await add_customer(api, stranger, agent=stranger_agent)
    status, body = await api.call(
        "POST",
        "/api/v1/policies",
        json=policy_body(own, book.senior),
        token=stranger.access_token,
    )
    assert (status, body["errors"][0]["field"]) == (422, "agent_id")
    _, dashboard = await api.call(
        "GET", "/api/v1/policies/agent-dashboard", token=stranger.access_token, expect=200
    )
    assert sum(dashboard["data"]["counts_by_status"].values()) == 0


async def test_everything_needs_a_token(api: Api) -> None:
    for method, path in (
        ("GET", "/api/v1/policies"),
        ("POST", "/api/v1/policies"),
        ("GET", "/api/v1/policies/agent-dashboard"),
        ("GET", "/api/v1/customers"),
        ("POST", "/api/v1/customers"),
    ):
        await api.call(method, path, json={} if method == "POST" else None, expect=401)
