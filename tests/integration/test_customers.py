"""Customers through the HTTP API: phones, validation, listing, links and soft deletes."""

from __future__ import annotations

from typing import Any

import pytest

from mitra.models import Role
from tests.support.api import Api
from tests.support.book import add_customer, add_policy, customer_body

CUSTOMERS = "/api/v1/customers"


@pytest.mark.parametrize("typed", ["98765 43210", "+91-98765-43210", "098765 43210"])
async def test_indian_numbers_are_stored_in_e164(api: Api, typed: str) -> None:
    admin = await api.tenant()
    agent = await api.user(admin, Role.SENIOR_AGENT)
    customer = await add_customer(api, agent, phone=typed)
    assert customer["phone"] == "+919876543210"
    assert customer["agent_id"] == agent.user_id
    assert customer["created_by"] == agent.user_id
    assert customer["preferred_language"] == "en"


async def test_create_read_update_with_every_field(api: Api) -> None:
    admin = await api.tenant()
    agent = await api.user(admin, Role.SENIOR_AGENT)
    holder = await api.register(admin.tenant_slug)
    customer = await add_customer(
        api,
        admin,
        agent=agent,
        full_name="  Lakshmi Narayanan ",
        email="Lakshmi@Example.com",
        date_of_birth="1980-05-17",
        address="4 Anna Salai, Chennai",
        preferred_language="ta",
        user_id=holder.user_id,
    )
    assert customer["full_name"] == "Lakshmi Narayanan"
    assert customer["email"] == "lakshmi@example.com"
    assert customer["user_id"] == holder.user_id
    path = f"{CUSTOMERS}/{customer['id']}"
    _, updated = await api.call(
        "PATCH",
        path,
        json={"email": None, "user_id": None, "phone": "91234 56789"},
        token=agent.access_token,
        expect=200,
    )
    assert updated["data"]["email"] is None
    assert updated["data"]["user_id"] is None
    assert updated["data"]["phone"] == "+919123456789"
    assert updated["data"]["updated_by"] == agent.user_id
    assert updated["data"]["date_of_birth"] == "1980-05-17"
    # The unlinked policyholder no longer sees the customer.
    await api.call("GET", path, token=holder.access_token, expect=404)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"phone": "12345"}, "phone"),
        ({"phone": "not a number"}, "phone"),
        ({"phone": ""}, "phone"),
        ({"full_name": ""}, "full_name"),
        ({"email": "nobody"}, "email"),
        ({"date_of_birth": "2999-01-01"}, "date_of_birth"),
        ({"preferred_language": "English!"}, "preferred_language"),
        ({"agent_id": "00000000-0000-0000-0000-000000000000"}, "agent_id"),
        ({"surname": "K"}, "surname"),
    ],
)
async def test_bad_input_names_the_field(api: Api, change: dict[str, Any], field: str) -> None:
    admin = await api.tenant()
    status, body = await api.call(
        "POST", CUSTOMERS, json=customer_body(**change), token=admin.access_token
    )
    assert status == 422, body
    assert field in {error["field"] for error in body["errors"]}


async def test_links_and_owners_must_have_the_right_role(api: Api) -> None:
    admin = await api.tenant()
    agent = await api.user(admin, Role.JUNIOR_AGENT)
    status, body = await api.call(
        "POST", CUSTOMERS, json=customer_body(admin), token=admin.access_token
    )
    assert (status, body["errors"][0]["field"]) == (422, "agent_id")
    status, body = await api.call(
        "POST",
        CUSTOMERS,
        json=customer_body(agent, user_id=agent.user_id),
        token=admin.access_token,
    )
    assert (status, body["errors"][0]["field"]) == (422, "user_id")


async def test_list_search_and_pagination(api: Api) -> None:
    admin = await api.tenant()
    agent = await api.user(admin, Role.SENIOR_AGENT)
    for name, phone in (
        ("Ravi Kumar", "98765 43210"),
        ("Ravina Shah", "91234 56789"),
        ("Sita Devi", "99887 76655"),
    ):
        await add_customer(api, agent, full_name=name, phone=phone)

    async def names(query: str) -> list[str]:
        _, body = await api.call(
            "GET", f"{CUSTOMERS}?{query}", token=admin.access_token, expect=200
        )
        return [item["full_name"] for item in body["data"]["items"]]

    assert await names("q=ravi&sort=full_name") == ["Ravi Kumar", "Ravina Shah"]
    assert await names("q=76655") == ["Sita Devi"]
    assert await names("q=098765") == ["Ravi Kumar"]
    assert await names("sort=-full_name&limit=2") == ["Sita Devi", "Ravina Shah"]
    _, body = await api.call(
        "GET", f"{CUSTOMERS}?limit=2&page=2&sort=full_name", token=admin.access_token, expect=200
    )
    assert body["data"]["pagination"] == {"page": 2, "limit": 2, "total": 3, "pages": 2}
    assert [item["full_name"] for item in body["data"]["items"]] == ["Sita Devi"]
    assert await names(f"agent_id={agent.user_id}&q=sita") == ["Sita Devi"]
    for query, field in (("limit=500", "limit"), ("page=-1", "page"), ("sort=phone", "sort")):
        status, body = await api.call("GET", f"{CUSTOMERS}?{query}", token=admin.access_token)
        assert (status, body["errors"][0]["field"]) == (422, field)


async def test_a_customer_with_policies_cannot_be_deleted(api: Api) -> None:
    admin = await api.tenant()
    agent = await api.user(admin, Role.SENIOR_AGENT)
    customer = await add_customer(api, agent)
    policy = await add_policy(api, agent, customer)
    path = f"{CUSTOMERS}/{customer['id']}"
    await api.call("DELETE", path, token=admin.access_token, expect=409)
    await api.call(
        "DELETE", f"/api/v1/policies/{policy['id']}", token=admin.access_token, expect=200
    )
    await api.call("DELETE", path, token=admin.access_token, expect=200)
    _, listed = await api.call("GET", CUSTOMERS, token=admin.access_token, expect=200)
    assert listed["data"]["items"] == []
    await api.call("GET", path, token=admin.access_token, expect=404)
    # The policy cannot come back while its customer is deleted.
    await api.call(
        "POST",
        f"/api/v1/policies/{policy['id']}/restore",
        token=admin.access_token,
        expect=409,
    )
    _, restored = await api.call("POST", f"{path}/restore", token=admin.access_token, expect=200)
    assert restored["data"]["id"] == customer["id"]
    await api.call(
        "POST",
        f"/api/v1/policies/{policy['id']}/restore",
        token=admin.access_token,
        expect=200,
    )
