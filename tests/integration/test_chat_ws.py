"""The chat socket end to end: ordering, retries, recovery, membership and every error frame."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from handlers.app import create_app
from tests.conftest import SettingsFactory
from tests.support.api import Api
from tests.support.chat import Room, staff_room
from tests.support.notifier import RecordingNotifier
from tests.support.ws import ChatClient, stalled_socket


async def connect(api: Api, room: Room, member: int) -> ChatClient:
    return await ChatClient.connect(api.client, room.members[member].access_token)


async def test_members_see_one_conversation_in_one_order(api: Api) -> None:
    room = await staff_room(api, size=3)
    cid = str(room.conversation_id)
    sockets = [await connect(api, room, n) for n in range(3)]
    for member_socket in sockets:
        joined = await member_socket.join(cid)
        assert joined["last_seq"] == 0
    acks = await asyncio.gather(*(sockets[n % 3].say(cid, f"m{n}", f"body {n}") for n in range(30)))
    assert sorted(ack["seq"] for ack in acks) == list(range(1, 31))
    for member_socket in sockets:
        received = await member_socket.messages(30)
        assert [m["seq"] for m in received] == list(range(1, 31))
        by_client = {m["client_msg_id"]: m for m in received}
        assert by_client["m4"]["body"] == "body 4"
        assert by_client["m4"]["sender_id"] == str(room.principals[1].user_id)
        assert by_client["m4"]["channel"] == "app"
    for member_socket in sockets:
        await member_socket.close()


async def test_a_retried_send_returns_the_first_ack_and_stores_nothing(api: Api) -> None:
    room = await staff_room(api)
    cid = str(room.conversation_id)
    alice, bob = await connect(api, room, 0), await connect(api, room, 1)
    await alice.join(cid)
    await bob.join(cid)
    first = await alice.say(cid, "retry-me", "hello")
    again = await alice.say(cid, "retry-me", "hello")
    assert (again["seq"], again["message_id"]) == (first["seq"], first["message_id"])
    await bob.say(cid, "after", "next")
    received = await bob.messages(2)
    assert [(m["seq"], m["client_msg_id"]) for m in received] == [(1, "retry-me"), (2, "after")]
    _, history = await api.call(
        "GET", f"/api/v1/conversations/{cid}/messages", token=room.members[0].access_token
    )
    assert [m["client_msg_id"] for m in history["data"]] == ["retry-me", "after"]


async def test_reconnect_with_since_seq_recovers_exactly_what_was_missed(api: Api) -> None:
    room = await staff_room(api)
    cid = str(room.conversation_id)
    alice, bob = await connect(api, room, 0), await connect(api, room, 1)
    await alice.join(cid)
    await bob.join(cid)
    for n in range(1, 4):
        await alice.say(cid, f"seen{n}")
    seen = await bob.messages(3)
    await bob.close()
    for n in range(1, 6):
        await alice.say(cid, f"missed{n}")
    bob = await connect(api, room, 1)
    joined = await bob.join(cid, since_seq=seen[-1]["seq"])
    assert joined["last_seq"] == 8
    recovered = await bob.messages(5)
    assert [m["seq"] for m in recovered] == [4, 5, 6, 7, 8]
    assert [m["client_msg_id"] for m in recovered] == [f"missed{n}" for n in range(1, 6)]
    # Live messages follow the recovered ones, with nothing repeated.
    await alice.say(cid, "live")
    (live,) = await bob.messages(1)
    assert live["seq"] == 9
    assert [f["seq"] for f in bob.frames if f["type"] == "message"] == [4, 5, 6, 7, 8, 9]


async def test_outsiders_and_other_tenants_get_not_member(api: Api) -> None:
    room = await staff_room(api)
    other_tenant = await staff_room(api)
    same_tenant_outsider = await api.user(
        room.members[0], __import__("mitra.models").models.Role.JUNIOR_AGENT
    )
    cid = str(room.conversation_id)
    for token in (other_tenant.members[0].access_token, same_tenant_outsider.access_token):
        socket = await ChatClient.connect(api.client, token)
        await socket.send({"type": "join", "conversation_id": cid, "since_seq": 0, "ref": "j1"})
        error = await socket.expect("error")
        assert (error["code"], error["ref"]) == ("not_member", "j1")
        await socket.send(
            {"type": "send", "conversation_id": cid, "client_msg_id": "x1", "body": "sneaky"}
        )
        error = await socket.expect("error")
        assert (error["code"], error["ref"]) == ("not_member", "x1")
        status, _ = await api.call("GET", f"/api/v1/conversations/{cid}/messages", token=token)
        assert status == 404
        status, _ = await api.call(
            "POST",
            f"/api/v1/conversations/{cid}/messages",
            json={"client_msg_id": "x2", "body": "sneaky"},
            token=token,
        )
        assert status == 404
        await socket.close()
    _, history = await api.call(
        "GET", f"/api/v1/conversations/{cid}/messages", token=room.members[0].access_token
    )
    assert history["data"] == []


async def test_error_frames_never_close_a_healthy_socket(
    aiohttp_client: Any, make_settings: SettingsFactory
) -> None:
    settings = make_settings(chat={"max_body_chars": 10, "rate_limit_messages": 3})
    notifier = RecordingNotifier()
    app = create_app(settings, notifier=notifier)
    api = Api(await aiohttp_client(app), app, notifier)
    room = await staff_room(api)
    cid = str(room.conversation_id)
    socket = await connect(api, room, 0)
    await socket.join(cid)

    await socket.ws.send_str("{not json")
    assert (await socket.expect("error"))["code"] == "bad_json"
    await socket.send({"type": "dance", "ref": "r1"})
    error = await socket.expect("error")
    assert (error["code"], error["ref"]) == ("unknown_type", "r1")
    await socket.send({"type": "join", "conversation_id": "not-a-uuid", "ref": "r2"})
    error = await socket.expect("error")
    assert (error["code"], error["ref"]) == ("invalid_frame", "r2")
    assert "conversation_id" in error["message"]
    await socket.send(
        {"type": "send", "conversation_id": cid, "client_msg_id": "long", "body": "x" * 11}
    )
    error = await socket.expect("error")
    assert (error["code"], error["ref"]) == ("body_too_long", "long")
    for n in range(3):
        await socket.say(cid, f"ok{n}")
    await socket.send({"type": "send", "conversation_id": cid, "client_msg_id": "r4", "body": "x"})
    error = await socket.expect("error")
    assert (error["code"], error["ref"]) == ("rate_limited", "r4")
    await socket.send({"type": "ping", "ref": "p"})
    assert (await socket.expect("pong"))["ref"] == "p"
    assert socket.closed is None
    _, history = await api.call(
        "GET", f"/api/v1/conversations/{cid}/messages", token=room.members[0].access_token
    )
    assert [m["client_msg_id"] for m in history["data"]] == ["ok0", "ok1", "ok2"]


async def test_auth_is_the_first_frame_within_the_timeout(
    aiohttp_client: Any, make_settings: SettingsFactory
) -> None:
    settings = make_settings(chat={"auth_timeout_seconds": 0.3})
    notifier = RecordingNotifier()
    app = create_app(settings, notifier=notifier)
    client = await aiohttp_client(app)
    api = Api(client, app, notifier)
    admin = await api.tenant()
    silent = await ChatClient.connect(client, None)
    closed = await silent.wait_closed()
    assert closed.data == 4401
    forged = await ChatClient.connect(client, None)
    await forged.send({"type": "auth", "token": "not-a-token"})
    assert (await forged.wait_closed()).data == 4401
    wrong_first = await ChatClient.connect(client, None)
    await wrong_first.send({"type": "ping"})
    assert (await wrong_first.wait_closed()).data == 4401
    good = await ChatClient.connect(client, admin.access_token)
    await good.send({"type": "ping"})
    await good.expect("pong")
    await good.close()


async def test_typing_read_and_presence_reach_the_others(api: Api) -> None:
    room = await staff_room(api)
    cid = str(room.conversation_id)
    alice = await connect(api, room, 0)
    await alice.join(cid)
    bob = await connect(api, room, 1)
    joined = await bob.join(cid)
    assert str(room.principals[0].user_id) in joined["online"]
    online = await alice.expect("presence", lambda f: f["status"] == "online")
    assert online["user_id"] == str(room.principals[1].user_id)

    await bob.send({"type": "typing", "conversation_id": cid})
    typing = await alice.expect("typing")
    assert typing["user_id"] == str(room.principals[1].user_id)
    assert "socket_id" not in typing

    for n in range(3):
        await alice.say(cid, f"u{n}")
    _, listing = await api.call("GET", "/api/v1/conversations", token=room.members[1].access_token)
    assert listing["data"]["items"][0]["unread"] == 3
    assert listing["data"]["items"][0]["last_seq"] == 3
    await bob.send({"type": "read", "conversation_id": cid, "seq": 2})
    read = await alice.expect("read")
    assert (read["user_id"], read["seq"]) == (str(room.principals[1].user_id), 2)
    _, listing = await api.call("GET", "/api/v1/conversations", token=room.members[1].access_token)
    assert listing["data"]["items"][0]["unread"] == 1
    # A read position never moves back.
    await bob.send({"type": "read", "conversation_id": cid, "seq": 1})
    assert (await alice.expect("read"))["seq"] == 2

    await bob.close()
    offline = await alice.expect("presence", lambda f: f["status"] == "offline")
    assert offline["user_id"] == str(room.principals[1].user_id)
    # Typing only relays in a joined conversation.
    await alice.send({"type": "typing", "conversation_id": str(uuid.uuid4()), "ref": "t"})
    assert (await alice.expect("error"))["code"] == "not_member"
    assert not [
        f
        for f in alice.frames
        if f["type"] == "typing" and f["user_id"] == str(room.principals[0].user_id)
    ]


async def test_a_slow_socket_is_cut_off_without_delaying_the_others(
    aiohttp_client: Any, make_settings: SettingsFactory
) -> None:
    settings = make_settings(
        chat={"send_queue_size": 64, "rate_limit_messages": 100000, "max_body_chars": 4000}
    )
    notifier = RecordingNotifier()
    app = create_app(settings, notifier=notifier)
    client = await aiohttp_client(app)
    api = Api(client, app, notifier)
    room = await staff_room(api, size=3)
    cid = str(room.conversation_id)
    sender, healthy = await connect(api, room, 0), await connect(api, room, 1)
    await sender.join(cid)
    await healthy.join(cid)
    # The slow member authenticates and joins, then stops reading.
    assert client.server.port is not None
    slow = await stalled_socket(
        "127.0.0.1",
        client.server.port,
        [
            {"type": "auth", "token": room.members[2].access_token},
            {"type": "join", "conversation_id": cid, "since_seq": 0},
        ],
    )
    body = "x" * 4000
    count = 1500  # 6 MB: more than the kernel buffers between us and a reader that stopped
    for start in range(0, count, 10):
        await asyncio.gather(*(sender.say(cid, f"b{n}", body) for n in range(start, start + 10)))
    received = await healthy.messages(count, within=30)
    assert [m["seq"] for m in received] == list(range(1, count + 1))
    metrics = await (await client.get("/metrics")).text()
    assert "mitra_chat_send_queue_overflows_total 1" in metrics
    slow.close()


async def test_rest_open_list_history_and_send(api: Api) -> None:
    from mitra.models import Role
    from tests.support.book import add_customer

    admin = await api.tenant()
    agent = await api.user(admin, Role.SENIOR_AGENT)
    holder = await api.register(admin.tenant_slug)
    customer = await add_customer(api, agent, user_id=holder.user_id)
    _, opened = await api.call(
        "POST",
        "/api/v1/conversations",
        json={"customer_id": customer["id"]},
        token=agent.access_token,
        expect=201,
    )
    conversation = opened["data"]
    assert set(conversation["member_ids"]) == {agent.user_id, holder.user_id}
    _, again = await api.call(
        "POST",
        "/api/v1/conversations",
        json={"customer_id": customer["id"]},
        token=agent.access_token,
        expect=200,
    )
    assert again["data"]["id"] == conversation["id"]
    path = f"/api/v1/conversations/{conversation['id']}/messages"
    for n in range(5):
        _, sent = await api.call(
            "POST",
            path,
            json={"client_msg_id": f"r{n}", "body": f"hello {n}"},
            token=holder.access_token if n % 2 else agent.access_token,
            expect=201,
        )
        assert sent["data"]["seq"] == n + 1
    _, repeat = await api.call(
        "POST", path, json={"client_msg_id": "r4", "body": "hello 4"}, token=agent.access_token,
        expect=201,
    )  # fmt: skip
    assert repeat["data"]["seq"] == 5
    _, page = await api.call("GET", path + "?limit=2", token=holder.access_token, expect=200)
    assert [m["seq"] for m in page["data"]] == [4, 5]
    _, older = await api.call(
        "GET", path + "?before_seq=4&limit=2", token=holder.access_token, expect=200
    )
    assert [m["seq"] for m in older["data"]] == [2, 3]
    _, newer = await api.call("GET", path + "?after_seq=3", token=holder.access_token, expect=200)
    assert [m["seq"] for m in newer["data"]] == [4, 5]
    _, mine = await api.call("GET", "/api/v1/conversations", token=holder.access_token)
    assert mine["data"]["items"][0]["unread"] == 3  # the agent's three, not the holder's own two
    both = {"customer_id": customer["id"], "participant_ids": []}
    status, _ = await api.call("POST", "/api/v1/conversations", json=both, token=agent.access_token)
    assert status == 422
    status, _ = await api.call(
        "POST", path, json={"client_msg_id": "bad id!", "body": "x"}, token=agent.access_token
    )
    assert status == 422
    # The policyholder opening it gets the agent's conversation back, not a second one.
    _, theirs = await api.call(
        "POST", "/api/v1/conversations", json={"customer_id": customer["id"]},
        token=holder.access_token, expect=200,
    )  # fmt: skip
    assert theirs["data"]["id"] == conversation["id"]


async def test_metrics_count_sockets_and_messages(api: Api) -> None:
    room = await staff_room(api)
    cid = str(room.conversation_id)
    alice, bob = await connect(api, room, 0), await connect(api, room, 1)
    await alice.join(cid)
    await bob.join(cid)
    await alice.say(cid, "m1")
    await bob.messages(1)
    await alice.messages(1)
    text = await (await api.client.get("/metrics")).text()
    assert "mitra_chat_open_sockets 2" in text
    assert "mitra_chat_messages_in_total 1" in text
    assert "mitra_chat_messages_out_total 2" in text
    assert "mitra_chat_fanout_seconds_count 2" in text
    # Counted in plain lists on the hot path, still on the page: the send's actor ask.
    assert 'mitra_actors_ask_latency_seconds_count{kind="conversation"} 1' in text


def _sample(text: str, name: str, purpose: str) -> float:
    """The value of `name{purpose="..."}` in a Prometheus text page (0 when absent)."""
    for line in text.splitlines():
        if line.startswith(name + "{") and f'purpose="{purpose}"' in line:
            return float(line.rpartition(" ")[2])
    return 0.0


async def test_metrics_count_statements_and_commits_by_purpose(api: Api) -> None:
    room = await staff_room(api)
    cid = str(room.conversation_id)
    alice = await connect(api, room, 0)
    await alice.join(cid)
    before = await (await api.client.get("/metrics")).text()
    for n in range(3):
        await alice.say(cid, f"m{n}")
    await alice.messages(3)
    await api.call("GET", "/api/v1/conversations", token=room.members[0].access_token, expect=200)
    after = await (await api.client.get("/metrics")).text()
    written = _sample(after, "mitra_db_commits_total", "chat.write") - _sample(
        before, "mitra_db_commits_total", "chat.write"
    )
    # Three sends, each acked before the next: between one and three group commits.
    assert 1 <= written <= 3
    # At least one statement per commit (on PostgreSQL a batch is one statement).
    assert _sample(after, "mitra_db_statements_total", "chat.write") >= written
    assert _sample(after, "mitra_db_statements_total", "http") > _sample(
        before, "mitra_db_statements_total", "http"
    )
    assert _sample(after, "mitra_db_statements_total", "chat.socket") > 0  # the join's reads
