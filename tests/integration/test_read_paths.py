"""The REST read paths built without models answer exactly what the models would, in few
statements; and the tenant scope still holds on them."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from handlers.keys import AUTH, CONVERSATIONS, DATABASE
from handlers.schemas.chat import ConversationResponse
from handlers.schemas.policies import PolicyResponse
from mitra.db import Scope
from mitra.models import Message
from tests.support.api import Api
from tests.support.book import add_policy, make_book

POLICIES = "/api/v1/policies"


def _statements(api: Api) -> int:
    return api.app[DATABASE].metrics.statements.get("http", 0)


async def _statements_of(api: Api, path: str, token: str) -> tuple[int, dict[str, Any]]:
    await api.call("GET", path, token=token, expect=200)  # the session is cached from here
    before = _statements(api)
    _, body = await api.call("GET", path, token=token, expect=200)
    return _statements(api) - before, body


async def test_policy_reads_answer_what_the_model_answers(api: Api) -> None:
    book = await make_book(api)
    bare = await add_policy(
        api, book.senior, book.customer, maturity_date=None, next_due_date=None, status="pending"
    )
    for written in (book.policy, bare):
        # The write's answer is built by PolicyResponse from the ORM object.
        assert PolicyResponse.model_validate(written).model_dump(mode="json") == written
        _, one = await api.call(
            "GET", f"{POLICIES}/{written['id']}", token=book.senior.access_token, expect=200
        )
        assert one["data"] == written
    _, page = await api.call("GET", f"{POLICIES}?limit=100", token=book.admin.access_token)
    listed = {item["id"]: item for item in page["data"]["items"]}
    assert listed[bare["id"]] == bare
    assert listed[book.policy["id"]] == book.policy
    assert page["data"]["pagination"] == {"page": 1, "limit": 100, "total": 4, "pages": 1}


async def test_policy_reads_take_one_statement_and_one_for_the_total(api: Api) -> None:
    book = await make_book(api)
    token = book.senior.access_token
    # The whole listing fits on the first page: its length is the total.
    count, body = await _statements_of(api, f"{POLICIES}?limit=20", token)
    assert count == 1
    assert body["data"]["pagination"]["total"] == 1
    count, _ = await _statements_of(api, f"{POLICIES}/{book.policy['id']}", token)
    assert count == 1
    await add_policy(api, book.senior, book.customer)
    count, body = await _statements_of(api, f"{POLICIES}?limit=1", token)
    assert count == 2
    assert body["data"]["pagination"] == {"page": 1, "limit": 1, "total": 2, "pages": 2}
    count, body = await _statements_of(api, f"{POLICIES}?page=5&limit=20", token)
    assert count == 2
    assert body["data"]["items"] == []
    assert body["data"]["pagination"]["total"] == 2


async def test_policy_reads_stay_in_the_tenant(api: Api) -> None:
    book = await make_book(api)
    stranger = await api.tenant()
    _, page = await api.call("GET", f"{POLICIES}?limit=100", token=stranger.access_token)
    assert page["data"]["items"] == []
    assert page["data"]["pagination"]["total"] == 0
    await api.call(
        "GET", f"{POLICIES}/{book.policy['id']}", token=stranger.access_token, expect=404
    )
    # A filter naming another tenant's ids finds nothing either.
    _, page = await api.call(
        "GET",
        f"{POLICIES}?customer_id={book.customer['id']}",
        token=stranger.access_token,
        expect=200,
    )
    assert page["data"]["items"] == []


async def test_conversation_listing_answers_what_the_model_answers(api: Api) -> None:
    book = await make_book(api)
    _, opened = await api.call(
        "POST",
        "/api/v1/conversations",
        json={"customer_id": book.customer["id"]},
        token=book.senior.access_token,
        expect=201,
    )
    conversation_id = uuid.UUID(opened["data"]["id"])
    _, staff = await api.call(
        "POST",
        "/api/v1/conversations",
        json={"participant_ids": [book.junior.user_id], "title": "Team"},
        token=book.senior.access_token,
        expect=201,
    )
    senior = await api.app[AUTH].authenticate(book.senior.access_token)
    holder = uuid.UUID(book.holder.user_id)
    sent = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    async with api.app[DATABASE].transaction(Scope.tenant(senior.tenant_id)) as session:
        for seq, sender in enumerate([holder, holder, senior.user_id], start=1):
            session.add(
                Message(
                    tenant_id=senior.tenant_id,
                    conversation_id=conversation_id,
                    seq=seq,
                    sender_id=sender,
                    client_msg_id=f"m{seq}",
                    body="hello",
                    channel="app",
                    sent_at=sent + timedelta(seconds=seq),
                )
            )
    count, listed = await _statements_of(api, "/api/v1/conversations", book.senior.access_token)
    assert count == 2
    expected = [
        ConversationResponse.model_validate(asdict(summary)).model_dump(mode="json")
        for summary in (await api.app[CONVERSATIONS].list_for(senior)).items
    ]
    assert listed["data"]["items"] == expected
    assert listed["data"]["pagination"] == {"page": 1, "limit": 20, "total": 2, "pages": 1}
    first, second = listed["data"]["items"]
    assert first["id"] == str(conversation_id)
    assert (first["last_seq"], first["unread"]) == (3, 2)
    assert first["last_message_at"] == "2030-01-02T03:04:08Z"
    assert second == staff["data"]
    assert (second["last_seq"], second["unread"], second["last_message_at"]) == (0, 0, None)
    # The holder sees only their own conversation; a stranger tenant's admin sees none.
    _, theirs = await api.call(
        "GET", "/api/v1/conversations", token=book.holder.access_token, expect=200
    )
    assert [c["id"] for c in theirs["data"]["items"]] == [str(conversation_id)]
    assert theirs["data"]["items"][0]["unread"] == 1
    stranger = await api.tenant()
    _, none = await api.call(
        "GET", "/api/v1/conversations", token=stranger.access_token, expect=200
    )
    assert none["data"]["items"] == []
