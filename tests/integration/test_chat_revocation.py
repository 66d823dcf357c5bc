"""A socket does not outlive its session: revocation closes it with 4401."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import update

from handlers.app import create_app
from handlers.keys import DATABASE
from mitra.db import Scope, utcnow
from mitra.models import AuthSession
from tests.conftest import SettingsFactory
from tests.support.api import Api
from tests.support.chat import staff_room
from tests.support.notifier import RecordingNotifier
from tests.support.ws import ChatClient


async def joined_socket(api: Api, token: str, conversation_id: str) -> ChatClient:
    socket = await ChatClient.connect(api.client, token)
    await socket.join(conversation_id)
    return socket


async def test_logout_closes_the_sessions_open_sockets_with_4401(api: Api) -> None:
    room = await staff_room(api)
    cid = str(room.conversation_id)
    alice = room.members[0]
    first = await joined_socket(api, alice.access_token, cid)
    second = await joined_socket(api, alice.access_token, cid)
    other = await joined_socket(api, room.members[1].access_token, cid)
    await api.call("POST", "/api/v1/auth/logout", token=alice.access_token, expect=200)
    for socket in (first, second):
        closed = await socket.wait_closed(within=5)
        assert closed.data == 4401
    # Another user's socket lives on.
    ack = await other.say(cid, "after-logout", "still here")
    assert ack["seq"] == 1
    status, _ = await api.call("GET", "/api/v1/users/me", token=alice.access_token)
    assert status == 401
    await other.close()


async def test_refresh_token_reuse_closes_the_sockets_of_the_stolen_session(api: Api) -> None:
    room = await staff_room(api)
    cid = str(room.conversation_id)
    alice = room.members[0]
    socket = await joined_socket(api, alice.access_token, cid)
    stolen = alice.refresh_token
    await api.call("POST", "/api/v1/auth/refresh", json={"refresh_token": stolen}, expect=200)
    status, _ = await api.call("POST", "/api/v1/auth/refresh", json={"refresh_token": stolen})
    assert status == 401
    assert (await socket.wait_closed(within=5)).data == 4401


@pytest.fixture
async def checking_api(
    aiohttp_client: Any, make_settings: SettingsFactory, notifier: RecordingNotifier
) -> Api:
    settings = make_settings(chat={"session_check_seconds": 0.5})
    app = create_app(settings, notifier=notifier)
    return Api(await aiohttp_client(app), app, notifier)


async def test_a_revocation_whose_event_never_came_still_closes_the_socket(
    checking_api: Api,
) -> None:
    """Revoked behind the service's back (no event, no listener): the periodic re-check of
    open sockets' sessions finds it."""
    api = checking_api
    room = await staff_room(api)
    cid = str(room.conversation_id)
    socket = await joined_socket(api, room.members[0].access_token, cid)
    async with api.app[DATABASE].transaction(Scope.system()) as session:
        await session.execute(
            update(AuthSession)
            .where(AuthSession.id == room.principals[0].session_id)
            .values(revoked_at=utcnow(), revoked_reason="test")
        )
    started = time.monotonic()
    assert (await socket.wait_closed(within=5)).data == 4401
    assert time.monotonic() - started < 3
