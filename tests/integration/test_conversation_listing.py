"""`GET /api/v1/conversations` pages and searches, newest activity first, in a constant number
of statements per page."""

from __future__ import annotations

from typing import Any

from handlers.keys import DATABASE
from mitra.models import Role
from tests.support.api import Account, Api
from tests.support.book import add_customer

CONVERSATIONS = "/api/v1/conversations"
NAMES = ["Asha Verma", "Bhavna Iyer", "Chetan Rao", "Deepak Nair", "Esha Gupta"]


async def _open(api: Api, agent: Account, body: dict[str, Any]) -> str:
    _, opened = await api.call("POST", CONVERSATIONS, json=body, token=agent.access_token)
    conversation_id: str = opened["data"]["id"]
    return conversation_id


async def _say(api: Api, agent: Account, conversation_id: str, client_msg_id: str) -> None:
    await api.call(
        "POST", f"{CONVERSATIONS}/{conversation_id}/messages",
        json={"client_msg_id": client_msg_id, "body": "hello"}, token=agent.access_token,
        expect=201,
    )  # fmt: skip


async def _list(api: Api, agent: Account, query: str) -> tuple[list[str], dict[str, int]]:
    _, body = await api.call(
        "GET", f"{CONVERSATIONS}?{query}", token=agent.access_token, expect=200
    )
    return [c["id"] for c in body["data"]["items"]], body["data"]["pagination"]


async def test_pages_and_searches_newest_activity_first(api: Api) -> None:
    admin = await api.tenant()
    agent = await api.user(admin, Role.SENIOR_AGENT)
    colleague = await api.user(admin, Role.JUNIOR_AGENT)
    customers = [
        await add_customer(api, agent, full_name=name, phone=f"98765 4321{n}")
        for n, name in enumerate(NAMES)
    ]
    opened = [await _open(api, agent, {"customer_id": c["id"]}) for c in customers]
    desk = await _open(api, agent, {"participant_ids": [colleague.user_id], "title": "Claims desk"})
    # Activity order, newest last: Chetan, Asha, Esha; the others and the desk never spoke,
    # so they follow by when they were opened, the desk (opened last) first.
    for n, index in enumerate([2, 0, 4]):
        await _say(api, agent, opened[index], f"m{n}")
    newest_first = [opened[4], opened[0], opened[2], desk, opened[3], opened[1]]

    items, pagination = await _list(api, agent, "page=1&limit=4")
    assert items == newest_first[:4]
    assert pagination == {"page": 1, "limit": 4, "total": 6, "pages": 2}
    items, pagination = await _list(api, agent, "page=2&limit=4")
    assert items == newest_first[4:]
    assert pagination == {"page": 2, "limit": 4, "total": 6, "pages": 2}
    items, pagination = await _list(api, agent, "page=3&limit=4")
    assert (items, pagination["total"]) == ([], 6)

    # By customer name (any case), by phone digits as typed, by title.
    assert (await _list(api, agent, "q=bhavna"))[0] == [opened[1]]
    assert (await _list(api, agent, "q=098765%2043213"))[0] == [opened[3]]
    assert (await _list(api, agent, "q=claims"))[0] == [desk]
    items, pagination = await _list(api, agent, "q=ha&limit=2")
    assert items == [opened[4], opened[0]]  # Esha, Asha (newest first); then Bhavna
    assert pagination == {"page": 1, "limit": 2, "total": 3, "pages": 2}
    items, pagination = await _list(api, agent, "q=ha&limit=2&page=2")
    assert items == [opened[1]]
    # The wildcard characters of LIKE are text like any other.
    assert await _list(api, agent, "q=%25") == (
        [],
        {"page": 1, "limit": 20, "total": 0, "pages": 0},
    )
    # The colleague sees only the desk, whatever they search for.
    assert (await _list(api, colleague, "q=a"))[0] == [desk]
    status, _ = await api.call("GET", f"{CONVERSATIONS}?limit=101", token=agent.access_token)
    assert status == 422


async def test_a_page_costs_the_same_statements_however_many_conversations(api: Api) -> None:
    admin = await api.tenant()
    agent = await api.user(admin, Role.SENIOR_AGENT)

    async def statements(query: str) -> int:
        await api.call("GET", f"{CONVERSATIONS}?{query}", token=agent.access_token, expect=200)
        before = api.app[DATABASE].metrics.statements.get("http", 0)
        await api.call("GET", f"{CONVERSATIONS}?{query}", token=agent.access_token, expect=200)
        return int(api.app[DATABASE].metrics.statements.get("http", 0) - before)

    for n in range(3):
        customer = await add_customer(api, agent, full_name=f"Kiran {n}", phone=f"98111 1111{n}")
        await _open(api, agent, {"customer_id": customer["id"]})
    few = [await statements(q) for q in ("limit=2", "limit=2&q=kiran", "limit=20")]
    for n in range(3, 12):
        customer = await add_customer(api, agent, full_name=f"Kiran {n}", phone=f"98111 111{n:02}")
        await _open(api, agent, {"customer_id": customer["id"]})
    many = [await statements(q) for q in ("limit=2", "limit=2&q=kiran", "limit=20")]
    # The page, its members and the total; the total is skipped when the page holds it all.
    assert few == [3, 3, 2]
    assert many == [3, 3, 2]
