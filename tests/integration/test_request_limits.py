"""The OpenAPI document states the length limits the server enforces, and a value past one is a
422 naming its field, before anything is stored or sent."""

from __future__ import annotations

import uuid
from typing import Any

from handlers.keys import SETTINGS
from mitra.settings import BODY_CHARS_CEILING
from tests.support.api import Api
from tests.support.chat import staff_room


async def schemas(api: Api) -> dict[str, Any]:
    response = await api.client.get("/api/v1/openapi.json")
    assert response.status == 200
    document: dict[str, Any] = await response.json()
    found: dict[str, Any] = document["components"]["schemas"]
    return found


def text_limit(schema: dict[str, Any]) -> int | None:
    """The maxLength of a string property, also when it may be null (`anyOf` with null)."""
    for option in [schema, *schema.get("anyOf", [])]:
        if option.get("type") == "string":
            limit: int | None = option.get("maxLength")
            return limit
    return None


async def test_a_message_body_past_the_limit_is_a_422_naming_body_and_the_document_says_so(
    api: Api,
) -> None:
    body = (await schemas(api))["SendMessageRequest"]["properties"]["body"]
    assert body["maxLength"] == BODY_CHARS_CEILING
    assert "chat.max_body_chars" in body["description"]

    room = await staff_room(api)
    path = f"/api/v1/conversations/{room.conversation_id}/messages"
    token = room.members[0].access_token
    limit = api.app[SETTINGS].chat.max_body_chars
    status, answer = await api.call(
        "POST", path, token=token, json={"client_msg_id": "long", "body": "x" * (limit + 1)}
    )
    assert status == 422
    assert [error["field"] for error in answer["errors"]] == ["body"]
    status, answer = await api.call(
        "POST", path, token=token, json={"client_msg_id": "long", "body": "x" * limit}
    )
    assert status == 201, answer
    assert answer["data"]["seq"] == 1  # the refused one took no seq


async def test_whatsapp_limits_are_in_the_document_and_refused_by_field(api: Api) -> None:
    found = await schemas(api)
    assert text_limit(found["ReplyButtonSpec"]["properties"]["title"]) == 20
    assert text_limit(found["ListRowSpec"]["properties"]["title"]) == 24
    assert text_limit(found["ListRowSpec"]["properties"]["description"]) == 72
    assert text_limit(found["ListSpec"]["properties"]["button"]) == 20
    assert text_limit(found["MediaSpec"]["properties"]["caption"]) == 1024

    admin = await api.tenant()
    # The model refuses it before the customer is looked up: no customer needs to exist.
    request: dict[str, Any] = {
        "customer_id": str(uuid.uuid4()),
        "body": "Pay your premium now?",
        "buttons": [{"id": "pay", "title": "Pay now"}, {"id": "later", "title": "x" * 21}],
    }
    status, answer = await api.call(
        "POST", "/api/v1/whatsapp/messages", token=admin.access_token, json=request
    )
    assert status == 422, answer
    assert [error["field"] for error in answer["errors"]] == ["buttons.1.title"]
    request = {
        "customer_id": str(uuid.uuid4()),
        "body": "Which policy?",
        "list": {"button": "Policies", "sections": [{"rows": [
            {"id": "p1", "title": "Jeevan Anand", "description": "d" * 73},
        ]}]},
    }  # fmt: skip
    status, answer = await api.call(
        "POST", "/api/v1/whatsapp/messages", token=admin.access_token, json=request
    )
    assert status == 422, answer
    assert [error["field"] for error in answer["errors"]] == ["list.sections.0.rows.0.description"]
