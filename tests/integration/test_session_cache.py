"""Authentication from the live-session cache, and revocations that still bite at once."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from handlers.app import create_app
from handlers.keys import AUTH, DATABASE
from mitra.models import Role
from streams import create_streams
from tests.conftest import SettingsFactory
from tests.support.api import PASSWORD, Account, Api
from tests.support.notifier import RecordingNotifier

ME = "/api/v1/users/me"
LOGIN = "/api/v1/auth/login"


def _http_statements(api: Api) -> int:
    return api.app[DATABASE].metrics.statements.get("http", 0)


async def _second_login(api: Api, account: Account) -> Account:
    other = Account(account.email, account.password, account.tenant_slug, account.role)
    await api.login(other)
    return other


async def test_the_cache_saves_the_round_trip(api: Api) -> None:
    admin = await api.tenant()
    await api.call("GET", ME, token=admin.access_token, expect=200)  # cached from here
    before = _http_statements(api)
    n = 20
    for _ in range(n):
        await api.call("GET", ME, token=admin.access_token, expect=200)
    # GET /users/me reads the user: one statement each, none for authentication.
    assert _http_statements(api) - before == n


async def test_without_the_cache_every_request_asks_the_database(
    make_settings: SettingsFactory, aiohttp_client: Any
) -> None:
    notifier = RecordingNotifier()
    app = create_app(make_settings(auth={"session_cache_seconds": 0}), notifier=notifier)
    api = Api(await aiohttp_client(app), app, notifier)
    admin = await api.tenant()
    before = _http_statements(api)
    for _ in range(10):
        await api.call("GET", ME, token=admin.access_token, expect=200)
    assert _http_statements(api) - before == 20


async def test_logout_refuses_the_session_at_once(api: Api) -> None:
    admin = await api.tenant()
    other = await _second_login(api, admin)
    await api.call("GET", ME, token=admin.access_token, expect=200)
    await api.call("POST", "/api/v1/auth/logout", token=admin.access_token, expect=200)
    _, body = await api.call("GET", ME, token=admin.access_token, expect=401)
    assert body["message"] == "session revoked"
    await api.call("GET", ME, token=other.access_token, expect=200)


async def test_a_password_change_ends_the_other_sessions_at_once(api: Api) -> None:
    admin = await api.tenant()
    other = await _second_login(api, admin)
    await api.call("GET", ME, token=other.access_token, expect=200)  # cached
    await api.call(
        "PATCH",
        ME,
        json={"current_password": PASSWORD, "new_password": "an entirely new passphrase"},
        token=admin.access_token,
        expect=200,
    )
    await api.call("GET", ME, token=other.access_token, expect=401)
    await api.call("GET", ME, token=admin.access_token, expect=200)


async def test_a_password_reset_ends_every_session_at_once(api: Api) -> None:
    admin = await api.tenant()
    other = await _second_login(api, admin)
    for account in (admin, other):
        await api.call("GET", ME, token=account.access_token, expect=200)
    await api.call(
        "POST", "/api/v1/auth/request-password-reset", json={"email": admin.email}, expect=200
    )
    token = api.notifier.last_secret("password_reset", admin.email)
    await api.call(
        "POST",
        "/api/v1/auth/reset-password",
        json={"token": token, "new_password": "a brand new passphrase"},
        expect=200,
    )
    for account in (admin, other):
        await api.call("GET", ME, token=account.access_token, expect=401)


async def test_refresh_token_reuse_refuses_the_session_at_once(api: Api) -> None:
    admin = await api.tenant()
    _, rotated = await api.call(
        "POST", "/api/v1/auth/refresh", json={"refresh_token": admin.refresh_token}, expect=200
    )
    fresh_access = rotated["data"]["access_token"]
    await api.call("GET", ME, token=fresh_access, expect=200)  # cached
    await api.call(
        "POST", "/api/v1/auth/refresh", json={"refresh_token": admin.refresh_token}, expect=401
    )
    await api.call("GET", ME, token=fresh_access, expect=401)
    await api.call("GET", ME, token=admin.access_token, expect=401)


async def test_listeners_hear_revocations_and_live_sessions_answers(api: Api) -> None:
    admin = await api.tenant()
    other = await _second_login(api, admin)
    auth = api.app[AUTH]
    me = await auth.authenticate(admin.access_token)
    them = await auth.authenticate(other.access_token)
    heard: list[frozenset[uuid.UUID]] = []
    twice = asyncio.Event()

    def listener(ids: frozenset[uuid.UUID]) -> None:
        heard.append(ids)
        if len(heard) == 2:
            twice.set()

    auth.add_revocation_listener(listener)
    stranger = uuid.uuid4()
    assert await auth.live_sessions([me.session_id, them.session_id, stranger]) == {
        me.session_id,
        them.session_id,
    }
    await api.call("POST", "/api/v1/auth/logout", token=admin.access_token, expect=200)
    assert heard[0] == {me.session_id}
    assert await auth.live_sessions([me.session_id, them.session_id]) == {them.session_id}
    # The event reaches this instance's own consumer too (listeners are idempotent).
    async with asyncio.timeout(5):
        await twice.wait()
    assert heard[1] == {me.session_id}
    assert await auth.live_sessions([]) == frozenset()


async def test_live_sessions_works_in_chunks(api: Api) -> None:
    admin = await api.tenant()
    me = await api.app[AUTH].authenticate(admin.access_token)
    many = [uuid.uuid4() for _ in range(1200)] + [me.session_id]
    assert await api.app[AUTH].live_sessions(many) == {me.session_id}


async def test_another_instance_sees_the_revocation_within_seconds(
    make_settings: SettingsFactory, aiohttp_client: Any
) -> None:
    # A long cache TTL, so only the pushed event can explain a prompt 401 on the other instance.
    settings = make_settings(auth={"session_cache_seconds": 120})
    streams = create_streams("memory://")
    await streams.start()
    try:
        notifier = RecordingNotifier()
        first_app = create_app(settings, notifier=notifier, streams=streams)
        second_app = create_app(settings, notifier=notifier, streams=streams)
        first = Api(await aiohttp_client(first_app), first_app, notifier)
        second = Api(await aiohttp_client(second_app), second_app, notifier)
        admin = await first.tenant()
        staff = await first.user(admin, Role.SENIOR_AGENT)
        staff_again = await _second_login(first, staff)
        heard: list[frozenset[uuid.UUID]] = []
        second_app[AUTH].add_revocation_listener(heard.append)
        for account in (admin, staff, staff_again):
            await second.call("GET", ME, token=account.access_token, expect=200)  # cached there

        await first.call("POST", "/api/v1/auth/logout", token=admin.access_token, expect=200)
        await first.call(
            "PATCH",
            ME,
            json={"current_password": PASSWORD, "new_password": "an entirely new passphrase"},
            token=staff.access_token,
            expect=200,
        )
        started = time.monotonic()
        await _until_refused(second, admin.access_token)
        await _until_refused(second, staff_again.access_token)
        assert time.monotonic() - started < 5
        await second.call("GET", ME, token=staff.access_token, expect=200)
        revoked = set().union(*heard)
        assert (await second_app[AUTH].authenticate(staff.access_token)).session_id not in revoked
        assert len(revoked) == 2
    finally:
        await streams.stop()


async def _until_refused(api: Api, token: str) -> None:
    async with asyncio.timeout(5):
        while True:
            status, _ = await api.call("GET", ME, token=token)
            if status == 401:
                return
            assert status == 200
            await asyncio.sleep(0.05)
