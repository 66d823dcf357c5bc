"""Input the database cannot take is refused at the edge, and a failure never leaks what was sent.

A NUL character, an integer past its column's range, an exception after the WebSocket upgrade
and a database error carrying a password hash: each reached the database or the log before.
"""

from __future__ import annotations

import importlib
import io
import logging
import pkgutil
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel
from sqlalchemy import event

import handlers.schemas
from handlers.keys import CHAT_ROUTER, CONVERSATIONS, DATABASE
from handlers.schemas.common import IdPath, RequestModel, ResponseModel
from mitra.models import Role
from mitra.observability.logging import JsonFormatter, TextFormatter
from mitra.records import MAX_PAGE
from tests.support.api import PASSWORD, Api
from tests.support.book import add_customer, add_policy, customer_body, policy_body
from tests.support.chat import staff_room
from tests.support.ws import ChatClient

NUL = "\x00"
INT32_MAX = 2**31 - 1
INT64_OVER = 2**63


# Fields that stay text once parsed say why; the others (an email, a uuid, a date, a number, a
# choice) are refused by their own parsing, still naming the field.
TEXT_FIELDS = {
    "tenant",
    "first_name",
    "last_name",
    "password",
    "phone_number",
    "identifier",
    "mfa_token",
    "refresh_token",
    "token",
    "full_name",
    "address",
    "phone",
    "q",
    "policy_number",
    "plan_name",
    "title",
    "body",
    "id",
}


def fields_of(body: dict[str, Any]) -> list[str | None]:
    return [error["field"] for error in body["errors"]]


# ---- NUL characters ---------------------------------------------------------------------------


async def test_a_nul_in_any_text_field_is_refused_with_422_naming_the_field(api: Api) -> None:
    admin = await api.tenant()
    senior = await api.user(admin, Role.SENIOR_AGENT)
    customer = await add_customer(api, senior)
    policy = await add_policy(api, senior, customer)
    _, opened = await api.call(
        "POST",
        "/api/v1/conversations",
        json={"customer_id": customer["id"]},
        token=senior.access_token,
        expect=201,
    )
    cid = opened["data"]["id"]
    register = {
        "tenant": admin.tenant_slug,
        "email": "new@example.com",
        "password": PASSWORD,
        "first_name": "Priya",
        "last_name": "Sharma",
    }
    staff = {**register, "role": "junior_agent"}
    del staff["tenant"]
    anonymous, agent, boss = None, senior.access_token, admin.access_token
    cases: list[tuple[str, str, dict[str, Any] | None, str | None, str]] = [
        ("POST", "/api/v1/auth/register", {**register, "tenant": f"x{NUL}"}, anonymous, "tenant"),
        ("POST", "/api/v1/auth/register", {**register, "first_name": NUL}, anonymous, "first_name"),
        (
            "POST",
            "/api/v1/auth/register",
            {**register, "password": f"a{NUL}"},
            anonymous,
            "password",
        ),
        (
            "POST",
            "/api/v1/auth/register",
            {**register, "phone_number": f"98765{NUL}43210"},
            anonymous,
            "phone_number",
        ),
        (
            "POST",
            "/api/v1/auth/login",
            {"identifier": f"{admin.email}{NUL}", "password": PASSWORD},
            anonymous,
            "identifier",
        ),
        (
            "POST",
            "/api/v1/auth/login",
            {"identifier": admin.email, "password": f"{PASSWORD}{NUL}"},
            anonymous,
            "password",
        ),
        (
            "POST",
            "/api/v1/auth/verify-otp",
            {"mfa_token": f"t{NUL}", "otp_code": "123456"},
            anonymous,
            "mfa_token",
        ),
        ("POST", "/api/v1/auth/refresh", {"refresh_token": f"r{NUL}"}, anonymous, "refresh_token"),
        (
            "POST",
            "/api/v1/auth/request-password-reset",
            {"email": f"a{NUL}@example.com"},
            anonymous,
            "email",
        ),
        (
            "POST",
            "/api/v1/auth/reset-password",
            {"token": f"t{NUL}", "new_password": PASSWORD},
            anonymous,
            "token",
        ),
        ("PATCH", "/api/v1/users/me", {"last_name": f"S{NUL}"}, agent, "last_name"),
        ("POST", "/api/v1/users", {**staff, "first_name": f"J{NUL}"}, boss, "first_name"),
        ("POST", "/api/v1/customers", customer_body(full_name=f"R{NUL}K"), agent, "full_name"),
        ("POST", "/api/v1/customers", customer_body(address=NUL), agent, "address"),
        ("PATCH", f"/api/v1/customers/{customer['id']}", {"phone": f"9{NUL}"}, agent, "phone"),
        ("GET", "/api/v1/customers?q=%00", None, agent, "q"),
        ("GET", "/api/v1/customers?q=ra%00vi&page=1", None, agent, "q"),
        (
            "POST",
            "/api/v1/policies",
            policy_body(customer, policy_number=f"P{NUL}"),
            agent,
            "policy_number",
        ),
        (
            "PUT",
            f"/api/v1/policies/{policy['id']}",
            policy_body(customer, plan_name=f"J{NUL}"),
            agent,
            "plan_name",
        ),
        ("PATCH", f"/api/v1/policies/{policy['id']}", {"plan_name": NUL}, agent, "plan_name"),
        ("GET", "/api/v1/policies?q=%00", None, agent, "q"),
        ("GET", "/api/v1/policies?sort=%00", None, agent, "sort"),
        ("GET", "/api/v1/analytics/dashboard?from=%00", None, boss, "from"),
        (
            "POST",
            "/api/v1/conversations",
            {"participant_ids": [senior.user_id], "title": f"t{NUL}"},
            boss,
            "title",
        ),
        (
            "POST",
            "/api/v1/conversations",
            {"participant_ids": [f"{senior.user_id}{NUL}"]},
            boss,
            "participant_ids.0",
        ),
        (
            "POST",
            f"/api/v1/conversations/{cid}/messages",
            {"client_msg_id": "c1", "body": f"hello{NUL}"},
            agent,
            "body",
        ),
        ("GET", f"/api/v1/conversations/{cid}/messages?after_seq=1%00", None, agent, "after_seq"),
        ("GET", "/api/v1/customers/%00", None, agent, "id"),
        ("GET", f"/api/v1/policies/{policy['id']}%00", None, agent, "id"),
        ("GET", f"/api/v1/conversations/{cid}%00/messages", None, agent, "id"),
    ]
    for method, path, json, token, field in cases:
        status, body = await api.call(method, path, json=json, token=token)
        assert (status, body["success"], fields_of(body)) == (422, False, [field]), (path, body)
        if field in TEXT_FIELDS:
            assert "NUL" in body["errors"][0]["message"], (path, body)
    # Nothing of it was stored, and the search did not match every record either.
    _, listed = await api.call("GET", "/api/v1/customers", token=agent, expect=200)
    assert [c["full_name"] for c in listed["data"]["items"]] == ["Ravi Kumar"]


async def test_a_nul_in_a_frame_is_an_invalid_frame_naming_the_field(api: Api) -> None:
    room = await staff_room(api)
    cid = str(room.conversation_id)
    socket = await ChatClient.connect(api.client, room.members[0].access_token)
    await socket.join(cid)
    frames: list[tuple[dict[str, Any], str]] = [
        ({"type": "send", "conversation_id": cid, "client_msg_id": "c1", "body": NUL}, "body"),
        (
            {"type": "send", "conversation_id": cid, "client_msg_id": f"c{NUL}", "body": "hi"},
            "client_msg_id",
        ),
        ({"type": "join", "conversation_id": f"{cid}{NUL}"}, "conversation_id"),
        ({"type": "typing", "conversation_id": f"{NUL}{cid}"}, "conversation_id"),
        ({"type": "ping", "ref": f"p{NUL}"}, "ref"),
    ]
    for n, (frame, field) in enumerate(frames):
        await socket.send({"ref": f"r{n}", **frame})
        error = await socket.expect("error")
        assert error["code"] == "invalid_frame", (frame, error)
        assert error["message"].startswith(f"{field}: "), (frame, error)
        if field in TEXT_FIELDS:
            assert "NUL" in error["message"], (frame, error)
    # The socket is still healthy, and nothing was stored.
    await socket.say(cid, "after", "fine")
    _, history = await api.call(
        "GET", f"/api/v1/conversations/{cid}/messages", token=room.members[0].access_token
    )
    assert [m["client_msg_id"] for m in history["data"]] == ["after"]
    await socket.close()


# ---- integers past their column ---------------------------------------------------------------


async def test_an_integer_past_its_column_is_refused_with_422_naming_the_field(api: Api) -> None:
    room = await staff_room(api)
    cid = str(room.conversation_id)
    token = room.members[0].access_token
    history = f"/api/v1/conversations/{cid}/messages"
    cases = [
        (f"/api/v1/customers?page={INT64_OVER}", "page"),
        (f"/api/v1/customers?page={MAX_PAGE + 1}", "page"),
        (f"/api/v1/customers?limit={INT64_OVER}", "limit"),
        (f"/api/v1/policies?page={INT64_OVER}", "page"),
        (f"/api/v1/policies?page={10**30}", "page"),
        (f"{history}?before_seq={INT32_MAX + 1}", "before_seq"),
        (f"{history}?after_seq={INT32_MAX + 1}", "after_seq"),
        (f"{history}?after_seq={INT64_OVER}", "after_seq"),
        (f"{history}?limit={INT64_OVER}", "limit"),
    ]
    for path, field in cases:
        status, body = await api.call("GET", path, token=token)
        assert (status, body["success"], fields_of(body)) == (422, False, [field]), (path, body)
    # At the bound itself the database answers: an empty page, not an error.
    for path in (
        f"/api/v1/customers?page={MAX_PAGE}&limit=100",
        f"/api/v1/policies?page={MAX_PAGE}&limit=100",
        f"{history}?before_seq={INT32_MAX}",
        f"{history}?after_seq={INT32_MAX}",
    ):
        status, body = await api.call("GET", path, token=token)
        assert status == 200, (path, body)
        items = body["data"]["items"] if isinstance(body["data"], dict) else body["data"]
        assert items == [], path


async def test_a_seq_past_its_column_in_a_frame_is_an_invalid_frame(api: Api) -> None:
    room = await staff_room(api)
    cid = str(room.conversation_id)
    socket = await ChatClient.connect(api.client, room.members[0].access_token)
    frames = [
        ({"type": "join", "conversation_id": cid, "since_seq": INT32_MAX + 1}, "since_seq"),
        ({"type": "join", "conversation_id": cid, "since_seq": INT64_OVER - 1}, "since_seq"),
        ({"type": "read", "conversation_id": cid, "seq": INT32_MAX + 1}, "seq"),
    ]
    for n, (frame, field) in enumerate(frames):
        await socket.send({"ref": f"r{n}", **frame})
        error = await socket.expect("error")
        assert (error["code"], error["ref"]) == ("invalid_frame", f"r{n}"), error
        assert error["message"].startswith(f"{field}: "), error
    # Past 64 bits (which a client's JSON encoder may refuse to write) it is the same answer.
    await socket.ws.send_str(f'{{"type":"read","conversation_id":"{cid}","seq":{10**30}}}')
    error = await socket.expect("error")
    assert error["code"] == "invalid_frame", error
    assert error["message"].startswith("seq: "), error
    assert not [f for f in socket.frames if f["type"] == "joined"]
    await socket.close()


async def test_a_since_seq_at_the_bound_is_clamped_and_live_messages_arrive(api: Api) -> None:
    room = await staff_room(api)
    cid = str(room.conversation_id)
    alice = await ChatClient.connect(api.client, room.members[0].access_token)
    bob = await ChatClient.connect(api.client, room.members[1].access_token)
    await alice.join(cid)
    await alice.say(cid, "one")
    joined = await bob.join(cid, since_seq=INT32_MAX)
    assert (joined["last_seq"], joined["since_seq"]) == (1, 1)
    await alice.say(cid, "two")
    (live,) = await bob.messages(1)
    assert (live["seq"], live["client_msg_id"]) == (2, "two")
    await alice.close()
    await bob.close()


def _request_models() -> Iterator[type[BaseModel]]:
    for info in pkgutil.iter_modules(handlers.schemas.__path__):
        module = importlib.import_module(f"handlers.schemas.{info.name}")
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, BaseModel)
                and value.__module__ == module.__name__
                and value.__name__.endswith(("Request", "Query", "Frame", "Path"))
                # What the server sends is not input (the socket's own frames, for one).
                and not issubclass(value, ResponseModel)
            ):
                yield value


def _unbounded_integers(schema: Any, where: str) -> Iterator[str]:
    if isinstance(schema, dict):
        if schema.get("type") == "integer" and not {"maximum", "exclusiveMaximum"} & set(schema):
            yield where
        for key, value in schema.items():
            yield from _unbounded_integers(value, f"{where}.{key}")
    elif isinstance(schema, list):
        for n, value in enumerate(schema):
            yield from _unbounded_integers(value, f"{where}[{n}]")


def test_every_request_model_refuses_nul_and_bounds_its_integers() -> None:
    """What the tests above check endpoint by endpoint, for every request model, those still
    to come included: each one inherits the NUL check, and no integer is unbounded."""
    models = list(_request_models())
    assert len(models) > 20
    for model in models:
        if model is not IdPath:
            assert issubclass(model, RequestModel), model
        assert not list(_unbounded_integers(model.model_json_schema(), model.__name__))


# ---- a crash after the upgrade ----------------------------------------------------------------


async def test_an_unexpected_error_after_the_upgrade_closes_the_socket_with_1011(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    room = await staff_room(api)
    cid = str(room.conversation_id)
    socket = await ChatClient.connect(api.client, room.members[0].access_token)
    await socket.join(cid)

    async def broken(*_args: Any) -> int:
        raise RuntimeError("a bug in the join path")

    monkeypatch.setattr(api.app[CONVERSATIONS], "last_seq_for_member", broken)
    await socket.send({"type": "join", "conversation_id": cid, "since_seq": 0, "ref": "j1"})
    error = await socket.expect("error")
    assert error["code"] == "internal_error"
    assert "request id" in error["message"]
    closed = await socket.wait_closed()
    assert closed.data == 1011, closed
    # The server goes on: a new socket works.
    monkeypatch.undo()
    again = await ChatClient.connect(api.client, room.members[0].access_token)
    await again.join(cid)
    await again.close()


# ---- no secrets in the error log --------------------------------------------------------------


@pytest.fixture
def error_log() -> Iterator[io.StringIO]:
    """The log as `mitra serve` writes it, in both formats (JSON and text)."""
    stream = io.StringIO()
    handlers = [logging.StreamHandler(stream), logging.StreamHandler(stream)]
    handlers[0].setFormatter(JsonFormatter())
    handlers[1].setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for handler in handlers:
        root.addHandler(handler)
    try:
        yield stream
    finally:
        for handler in handlers:
            root.removeHandler(handler)


async def test_a_database_failure_logs_no_parameters_and_no_body(
    api: Api, error_log: io.StringIO, caplog: pytest.LogCaptureFixture
) -> None:
    admin = await api.tenant()
    email = f"secret-{uuid.uuid4().hex[:8]}@example.com"
    password = f"pw-{uuid.uuid4().hex}"
    phone = "+919812345678"
    engine = api.app[DATABASE].engine.sync_engine

    def refuse(conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if statement.startswith("INSERT INTO users"):
            # What a server says about a row it refuses quotes the row's values, as
            # PostgreSQL's "DETAIL: Key (email)=(...)" does.
            raise conn.dialect.loaded_dbapi.OperationalError(
                f"refused\nDETAIL: Key (email)=({email}) is not wanted"
            )

    event.listen(engine, "before_cursor_execute", refuse)
    try:
        status, body = await api.call(
            "POST",
            "/api/v1/auth/register",
            json={
                "tenant": admin.tenant_slug,
                "email": email,
                "password": password,
                "phone_number": phone,
                "first_name": "Secretive",
                "last_name": "Person",
            },
        )
    finally:
        event.remove(engine, "before_cursor_execute", refuse)
    assert (status, body["success"], body["message"]) == (500, False, "internal error")
    logged = error_log.getvalue()
    assert logged.count("unhandled error") == 2, logged
    # What helps to find the bug stays: the request, the statement and the error's kind.
    assert body["request_id"] in logged
    assert "INSERT INTO users" in logged
    assert "OperationalError" in logged
    for secret in (
        email,
        email.split("@", maxsplit=1)[0],
        password,
        "$argon2",
        "98123",
        "Secretive",
    ):
        assert secret not in logged, secret
    # Whatever else reads the exception (another handler, an error tracker) gets no bound
    # parameters from SQLAlchemy either.
    (record,) = [r for r in caplog.records if r.getMessage() == "unhandled error"]
    assert record.exc_info is not None
    raised = str(record.exc_info[1])
    assert "INSERT INTO users" in raised
    assert "$argon2" not in raised
    assert "Secretive" not in raised


async def test_an_unexpected_error_storing_a_read_is_answered_and_the_socket_stays(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    room = await staff_room(api)
    cid = str(room.conversation_id)
    socket = await ChatClient.connect(api.client, room.members[0].access_token)
    await socket.join(cid)

    async def broken(*_args: Any) -> int:
        raise RuntimeError("a bug in the read path")

    monkeypatch.setattr(api.app[CONVERSATIONS], "mark_read", broken)
    await socket.send({"type": "read", "conversation_id": cid, "seq": 1, "ref": "r1"})
    error = await socket.expect("error", lambda e: e["ref"] == "r1", within=10)
    assert error["code"] == "internal_error"
    await socket.send({"type": "ping", "ref": "still-there"})
    await socket.expect("pong")
    await socket.close()


async def test_an_unexpected_error_in_a_send_is_answered_and_the_socket_stays(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    room = await staff_room(api)
    cid = str(room.conversation_id)
    socket = await ChatClient.connect(api.client, room.members[0].access_token)
    await socket.join(cid)
    router = api.app[CHAT_ROUTER]
    working = router.send

    async def broken(*_args: Any) -> Any:
        raise RuntimeError("a bug in the send path")

    monkeypatch.setattr(router, "send", broken)
    await socket.send(
        {"type": "send", "conversation_id": cid, "client_msg_id": "m1", "body": "hello"}
    )
    error = await socket.expect("error", lambda e: e["ref"] == "m1")
    assert error["code"] == "internal_error"
    assert "same client_msg_id" in error["message"]
    # Sending the same id again, once the bug is gone, stores it.
    monkeypatch.setattr(router, "send", working)
    ack = await socket.say(cid, "m1", "hello")
    assert ack["seq"] == 1
    await socket.close()
