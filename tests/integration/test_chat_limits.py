"""Chat limits per user: one send budget over sockets and REST, typing floods, coalesced reads."""

from __future__ import annotations

import random
import uuid
from typing import Any

from handlers.app import create_app
from tests.conftest import SettingsFactory
from tests.support.api import Api
from tests.support.chat import Room, staff_room
from tests.support.notifier import RecordingNotifier
from tests.support.ws import ChatClient


async def limited_api(aiohttp_client: Any, make_settings: SettingsFactory, **chat: Any) -> Api:
    notifier = RecordingNotifier()
    app = create_app(make_settings(chat=chat), notifier=notifier)
    return Api(await aiohttp_client(app), app, notifier)


async def joined(api: Api, room: Room, member: int) -> ChatClient:
    socket = await ChatClient.connect(api.client, room.members[member].access_token)
    await socket.join(str(room.conversation_id))
    return socket


async def refused(socket: ChatClient, cid: str, client_msg_id: str) -> dict[str, Any]:
    await socket.send(
        {"type": "send", "conversation_id": cid, "client_msg_id": client_msg_id, "body": "x"}
    )
    return await socket.expect("error", lambda f: f["ref"] == client_msg_id)


async def history(api: Api, room: Room) -> list[str]:
    _, body = await api.call(
        "GET",
        f"/api/v1/conversations/{room.conversation_id}/messages",
        token=room.members[0].access_token,
        expect=200,
    )
    return [message["client_msg_id"] for message in body["data"]]


async def test_two_sockets_of_one_user_share_one_send_budget(
    aiohttp_client: Any, make_settings: SettingsFactory
) -> None:
    api = await limited_api(aiohttp_client, make_settings, rate_limit_messages=3)
    room = await staff_room(api)
    cid = str(room.conversation_id)
    phone, laptop, bob = (
        await joined(api, room, 0),
        await joined(api, room, 0),
        await joined(api, room, 1),
    )
    await phone.say(cid, "p1")
    await phone.say(cid, "p2")
    await laptop.say(cid, "l1")
    # Either socket alone has sent fewer than three: together they have used the budget.
    assert (await refused(laptop, cid, "l2"))["code"] == "rate_limited"
    assert (await refused(phone, cid, "p3"))["code"] == "rate_limited"
    # The budget is the user's, not the conversation's.
    await bob.say(cid, "b1")
    assert await history(api, room) == ["p1", "p2", "l1", "b1"]


async def test_rest_sends_and_socket_sends_draw_on_one_budget(
    aiohttp_client: Any, make_settings: SettingsFactory
) -> None:
    api = await limited_api(aiohttp_client, make_settings, rate_limit_messages=3)
    room = await staff_room(api)
    cid = str(room.conversation_id)
    alice, bob = room.members
    socket = await joined(api, room, 0)
    for n in range(3):
        await socket.say(cid, f"ws{n}")
    response = await api.client.post(
        f"/api/v1/conversations/{cid}/messages",
        json={"client_msg_id": "rest1", "body": "over"},
        headers=alice.headers,
    )
    body = await response.json()
    assert response.status == 429
    assert body["success"] is False
    assert 1 <= int(response.headers["Retry-After"]) <= 10
    # A WhatsApp send is a send too, refused before anything is looked up or stored.
    response = await api.client.post(
        "/api/v1/whatsapp/messages",
        json={
            "customer_id": str(uuid.uuid4()),
            "body": "Renew now?",
            "buttons": [{"id": "yes", "title": "Yes"}],
        },
        headers=alice.headers,
    )
    assert response.status == 429
    assert "Retry-After" in response.headers
    # The other way round: REST uses the budget, then the socket is refused.
    for n in range(3):
        await api.call(
            "POST",
            f"/api/v1/conversations/{cid}/messages",
            json={"client_msg_id": f"rest-bob{n}", "body": "hi"},
            token=bob.access_token,
            expect=201,
        )
    bob_socket = await joined(api, room, 1)
    assert (await refused(bob_socket, cid, "ws-bob"))["code"] == "rate_limited"
    assert await history(api, room) == ["ws0", "ws1", "ws2", "rest-bob0", "rest-bob1", "rest-bob2"]


async def test_a_typing_flood_gets_rate_limited_frames_and_reaches_others_only_up_to_it(
    aiohttp_client: Any, make_settings: SettingsFactory
) -> None:
    api = await limited_api(
        aiohttp_client, make_settings, rate_limit_typing=5, read_flush_seconds=0.05
    )
    room = await staff_room(api)
    cid = str(room.conversation_id)
    alice, second, bob = (
        await joined(api, room, 0),
        await joined(api, room, 0),
        await joined(api, room, 1),
    )
    for n in range(6):
        await alice.send({"type": "typing", "conversation_id": cid, "ref": f"t{n}"})
    # A second socket of the same user has no budget of its own.
    await second.send({"type": "typing", "conversation_id": cid, "ref": "s0"})
    assert (await alice.expect("error", lambda f: f["ref"] == "t5"))["code"] == "rate_limited"
    assert (await second.expect("error", lambda f: f["ref"] == "s0"))["code"] == "rate_limited"
    assert [f["ref"] for f in alice.frames if f["type"] == "error"] == ["t5"]
    # Relays of one conversation keep their order, so once alice's read arrives, every typing
    # frame relayed before it has too.
    await alice.send({"type": "read", "conversation_id": cid, "seq": 0})
    await bob.expect("read")
    assert len([f for f in bob.frames if f["type"] == "typing"]) == 5


async def _commits(api: Api, purpose: str) -> float:
    text = await (await api.client.get("/metrics")).text()
    for line in text.splitlines():
        if line.startswith("mitra_db_commits_total{") and f'purpose="{purpose}"' in line:
            return float(line.rpartition(" ")[2])
    return 0.0


async def _unread(api: Api, member: Any) -> int:
    _, body = await api.call("GET", "/api/v1/conversations", token=member.access_token, expect=200)
    return int(body["data"]["items"][0]["unread"])


def read_burst(cid: str, last_seq: int) -> list[dict[str, Any]]:
    """200 read frames in a shuffled order whose highest seq is not the last one sent."""
    seqs = [1 + n % last_seq for n in range(199)]
    random.Random(7).shuffle(seqs)
    return [{"type": "read", "conversation_id": cid, "seq": seq} for seq in [*seqs, 3]]


async def test_a_burst_of_reads_is_one_write_of_the_highest_seq_stored_when_the_socket_closes(
    aiohttp_client: Any, make_settings: SettingsFactory
) -> None:
    # The delay outlasts the test: the one write is the socket closing.
    api = await limited_api(aiohttp_client, make_settings, read_flush_seconds=60)
    room = await staff_room(api)
    cid = str(room.conversation_id)
    alice = await joined(api, room, 0)
    for n in range(20):
        await alice.say(cid, f"m{n}")
    bob = await joined(api, room, 1)
    before = await _commits(api, "chat.read")
    for frame in read_burst(cid, 20):
        await bob.send(frame)
    await bob.send({"type": "ping", "ref": "after-reads"})
    await bob.expect("pong")
    assert await _unread(api, room.members[1]) == 20  # noted, not stored yet
    await bob.close()
    read = await alice.expect("read")
    assert read["seq"] == 20
    assert await _unread(api, room.members[1]) == 0
    assert await _commits(api, "chat.read") - before == 1
    assert [f["seq"] for f in alice.frames if f["type"] == "read"] == [20]


async def test_a_burst_of_reads_is_stored_after_the_delay_as_a_few_writes(
    aiohttp_client: Any, make_settings: SettingsFactory
) -> None:
    api = await limited_api(aiohttp_client, make_settings, read_flush_seconds=0.2)
    room = await staff_room(api)
    cid = str(room.conversation_id)
    alice = await joined(api, room, 0)
    for n in range(20):
        await alice.say(cid, f"m{n}")
    bob = await joined(api, room, 1)
    before = await _commits(api, "chat.read")
    for frame in read_burst(cid, 20):
        await bob.send(frame)
    read = await alice.expect("read", lambda f: f["seq"] == 20)
    assert read["user_id"] == str(room.principals[1].user_id)
    assert await _unread(api, room.members[1]) == 0
    # The socket stays open: what was stored came from the delay, far fewer writes than frames.
    assert 1 <= await _commits(api, "chat.read") - before < 20
    # Positions never go back, and a conversation the reader is not in is refused as before.
    await bob.send({"type": "read", "conversation_id": str(uuid.uuid4()), "seq": 1, "ref": "x"})
    error = await bob.expect("error", lambda f: f["ref"] == "x")
    assert error["code"] == "not_member"
    assert await _unread(api, room.members[1]) == 0
