"""Accounts and authentication through the HTTP API, on SQLite and on PostgreSQL."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import orjson
import pytest
from sqlalchemy import select, update

from handlers.keys import DATABASE
from mitra.db import Scope
from mitra.models import PasswordResetToken, Role, User
from mitra.settings import DEV_JWT_SECRET
from tests.support.api import PASSWORD, Api

LOGIN = "/api/v1/auth/login"
ME = "/api/v1/users/me"


async def test_register_login_and_me(api: Api) -> None:
    admin = await api.tenant()
    status, body = await api.call(
        "POST",
        "/api/v1/auth/register",
        json={
            "tenant": admin.tenant_slug,
            "email": "Priya@Example.com",
            "phone_number": "98765 43210",
            "password": PASSWORD,
            "first_name": "Priya",
            "last_name": "Sharma",
        },
    )
    assert status == 201, body
    assert body["success"] is True
    assert body["data"]["role"] == "policyholder"
    assert body["data"]["email"] == "priya@example.com"
    assert body["data"]["phone_number"] == "+919876543210"
    assert "password_hash" not in body["data"]

    _, login = await api.call(
        "POST", LOGIN, json={"identifier": "+91-98765-43210", "password": PASSWORD}, expect=200
    )
    tokens = login["data"]
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] == 900
    _, me = await api.call("GET", ME, token=tokens["access_token"], expect=200)
    assert me["data"]["email"] == "priya@example.com"
    assert me["data"]["last_login_at"] is not None


async def test_register_refuses_a_staff_role(api: Api) -> None:
    admin = await api.tenant()
    status, body = await api.call(
        "POST",
        "/api/v1/auth/register",
        json={
            "tenant": admin.tenant_slug,
            "email": "sneaky@example.com",
            "password": PASSWORD,
            "first_name": "S",
            "last_name": "N",
            "role": "super_admin",
        },
    )
    assert status == 403
    assert body["success"] is False
    assert await _user_count(api, "sneaky@example.com") == 0


async def test_register_validation_names_each_field(api: Api) -> None:
    admin = await api.tenant()
    status, body = await api.call(
        "POST",
        "/api/v1/auth/register",
        json={
            "tenant": admin.tenant_slug,
            "email": "not-an-email",
            "password": PASSWORD,
            "first_name": "",
            "last_name": "Sharma",
            "shoe_size": 9,
        },
    )
    assert status == 422
    fields = {error["field"] for error in body["errors"]}
    assert {"email", "first_name", "shoe_size"} <= fields


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("password", "short", "at least 10"),
        ("phone_number", "12345", "phone"),
        ("tenant", "no-such-tenant", "no such tenant"),
    ],
)
async def test_register_domain_rules(api: Api, field: str, value: str, message: str) -> None:
    admin = await api.tenant()
    body = {
        "tenant": admin.tenant_slug,
        "email": f"{uuid.uuid4().hex[:6]}@example.com",
        "password": PASSWORD,
        "first_name": "A",
        "last_name": "B",
        field: value,
    }
    status, reply = await api.call("POST", "/api/v1/auth/register", json=body)
    assert status == 422
    assert reply["errors"][0]["field"] == field
    assert message in reply["errors"][0]["message"]


async def test_email_and_phone_are_unique_across_tenants(api: Api) -> None:
    first = await api.tenant()
    second = await api.tenant()
    await api.register(first.tenant_slug, email="same@example.com", phone_number="9876500001")
    for duplicate in ({"email": "SAME@example.com"}, {"phone_number": "+91 98765 00001"}):
        body = {
            "tenant": second.tenant_slug,
            "email": "other@example.com",
            "password": PASSWORD,
            "first_name": "A",
            "last_name": "B",
            **duplicate,
        }
        status, reply = await api.call("POST", "/api/v1/auth/register", json=body)
        assert status == 409, reply


async def test_wrong_password_is_401_with_the_same_message_as_unknown_account(api: Api) -> None:
    admin = await api.tenant()
    _, wrong = await api.call(
        "POST", LOGIN, json={"identifier": admin.email, "password": "wrong password!"}, expect=401
    )
    _, unknown = await api.call(
        "POST", LOGIN, json={"identifier": "nobody@example.com", "password": "x"}, expect=401
    )
    assert wrong["message"] == unknown["message"] == "invalid credentials"


async def test_five_failures_lock_the_account_for_thirty_minutes(api: Api) -> None:
    admin = await api.tenant()
    bad = {"identifier": admin.email, "password": "wrong password!"}
    for _ in range(5):
        await api.call("POST", LOGIN, json=bad, expect=401)
    async with api.app[DATABASE].session(Scope.system()) as session:
        locked_until = (
            await session.execute(select(User.locked_until).where(User.email == admin.email))
        ).scalar_one()
    assert locked_until is not None
    remaining = locked_until.replace(tzinfo=UTC) - datetime.now(UTC)
    assert timedelta(minutes=29) < remaining <= timedelta(minutes=30)
    # The right password does not open a locked account either, and says no more than a wrong
    # one would (a 423 would tell a stranger the account exists); the owner hears of it by email.
    good = {"identifier": admin.email, "password": PASSWORD}
    status, body = await api.call("POST", LOGIN, json=good)
    assert status == 401
    assert body["message"] == "invalid credentials"
    assert "locked_until" not in body
    assert [n.to for n in api.notifier.sent if n.purpose == "account_locked"] == [admin.email]
    # Once the lock has passed, the right password works again.
    async with api.app[DATABASE].transaction(Scope.system()) as session:
        await session.execute(
            update(User)
            .where(User.email == admin.email)
            .values(locked_until=datetime.now(UTC) - timedelta(seconds=1))
        )
    await api.call("POST", LOGIN, json=good, expect=200)


async def test_refresh_rotates_and_reuse_revokes_the_family(api: Api) -> None:
    admin = await api.tenant()
    first_refresh = admin.refresh_token
    _, rotated = await api.call(
        "POST", "/api/v1/auth/refresh", json={"refresh_token": first_refresh}, expect=200
    )
    second_refresh = rotated["data"]["refresh_token"]
    assert second_refresh != first_refresh
    await api.call("GET", ME, token=rotated["data"]["access_token"], expect=200)

    # The old token comes back: someone copied it. The whole family dies, including the new one.
    status, body = await api.call(
        "POST", "/api/v1/auth/refresh", json={"refresh_token": first_refresh}
    )
    assert status == 401
    assert "revoked" in body["message"]
    await api.call(
        "POST", "/api/v1/auth/refresh", json={"refresh_token": second_refresh}, expect=401
    )
    await api.call("GET", ME, token=rotated["data"]["access_token"], expect=401)


async def test_logout_revokes_the_session_only(api: Api) -> None:
    admin = await api.tenant()
    other_device = {"identifier": admin.email, "password": PASSWORD}
    _, second = await api.call("POST", LOGIN, json=other_device, expect=200)
    await api.call("POST", "/api/v1/auth/logout", token=admin.access_token, expect=200)
    await api.call("GET", ME, token=admin.access_token, expect=401)
    await api.call(
        "POST", "/api/v1/auth/refresh", json={"refresh_token": admin.refresh_token}, expect=401
    )
    await api.call("GET", ME, token=second["data"]["access_token"], expect=200)


def _forge(payload: dict[str, object], key: str = DEV_JWT_SECRET, alg: str = "HS256") -> str:
    return jwt.encode(payload, key, algorithm=alg)


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(data)).rstrip(b"=").decode()


async def test_bad_tokens_are_refused(api: Api) -> None:
    admin = await api.tenant()
    claims = jwt.decode(admin.access_token, options={"verify_signature": False})
    expired = {**claims, "exp": int(datetime.now(UTC).timestamp()) - 10}
    alg_none = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
    cases = {
        "expired": _forge(expired),
        "forged": _forge(claims, key="not the server secret at all, no"),
        "alg none": alg_none,
        "refresh as access": admin.refresh_token,
        "garbage": "not.a.token",
    }
    for name, token in cases.items():
        status, body = await api.call("GET", ME, token=token)
        assert status == 401, name
        assert body["success"] is False, name
    _, body = await api.call("GET", ME, token=cases["expired"])
    assert body["message"] == "token expired"
    status, _ = await api.call("GET", ME)
    assert status == 401


async def test_a_token_claiming_another_tenant_is_refused(api: Api) -> None:
    mine = await api.tenant()
    theirs = await api.tenant()
    claims = jwt.decode(mine.access_token, options={"verify_signature": False})
    _, their_me = await api.call("GET", ME, token=theirs.access_token, expect=200)
    # Validly signed (the attacker has the dev secret in this test) but the user and session
    # belong to another tenant than the claim says: no rows are visible, so 401.
    other = {**claims, "tenant_id": their_me["data"]["tenant_id"]}
    await api.call("GET", ME, token=_forge(other), expect=401)


async def test_mfa_login_with_otp(api: Api) -> None:
    admin = await api.tenant()
    await api.call(
        "PATCH",
        ME,
        json={"mfa_enabled": True, "phone_number": "9876512345", "current_password": PASSWORD},
        token=admin.access_token,
        expect=200,
    )
    _, login = await api.call(
        "POST", LOGIN, json={"identifier": admin.email, "password": PASSWORD}, expect=200
    )
    assert login["data"]["requires_mfa"] is True
    assert "access_token" not in login["data"]
    mfa_token = login["data"]["mfa_token"]
    code = api.notifier.last_secret("login_otp", "+919876512345")
    assert len(code) == 6
    assert code.isdigit()
    wrong = "000000" if code != "000000" else "111111"
    status, body = await api.call(
        "POST", "/api/v1/auth/verify-otp", json={"mfa_token": mfa_token, "otp_code": wrong}
    )
    assert status == 401
    assert "4 attempts left" in body["message"]
    _, done = await api.call(
        "POST",
        "/api/v1/auth/verify-otp",
        json={"mfa_token": mfa_token, "otp_code": code},
        expect=200,
    )
    await api.call("GET", ME, token=done["data"]["access_token"], expect=200)
    # The code is single use.
    await api.call(
        "POST",
        "/api/v1/auth/verify-otp",
        json={"mfa_token": mfa_token, "otp_code": code},
        expect=401,
    )


async def test_otp_allows_five_attempts(api: Api) -> None:
    admin = await api.tenant()
    await api.call("PATCH", ME, json={"mfa_enabled": True}, token=admin.access_token, expect=200)
    _, login = await api.call(
        "POST", LOGIN, json={"identifier": admin.email, "password": PASSWORD}, expect=200
    )
    code = api.notifier.last_secret("login_otp", admin.email)
    wrong = "000000" if code != "000000" else "111111"
    body_wrong = {"mfa_token": login["data"]["mfa_token"], "otp_code": wrong}
    for _ in range(5):
        await api.call("POST", "/api/v1/auth/verify-otp", json=body_wrong, expect=401)
    right = {"mfa_token": login["data"]["mfa_token"], "otp_code": code}
    status, body = await api.call("POST", "/api/v1/auth/verify-otp", json=right)
    assert status == 401
    assert "too many attempts" in body["message"]


async def test_password_reset_is_single_use_and_ends_sessions(api: Api) -> None:
    admin = await api.tenant()
    _, known = await api.call(
        "POST", "/api/v1/auth/request-password-reset", json={"email": admin.email}, expect=200
    )
    _, unknown = await api.call(
        "POST",
        "/api/v1/auth/request-password-reset",
        json={"email": "nobody@example.com"},
        expect=200,
    )
    assert known == unknown
    token = api.notifier.last_secret("password_reset", admin.email)
    assert len([n for n in api.notifier.sent if n.purpose == "password_reset"]) == 1
    # Only the hash is stored.
    async with api.app[DATABASE].session(Scope.system()) as session:
        stored = (await session.execute(select(PasswordResetToken.token_hash))).scalars().all()
    assert token not in stored

    new_password = "a brand new passphrase"
    await api.call(
        "POST",
        "/api/v1/auth/reset-password",
        json={"token": token, "new_password": new_password},
        expect=200,
    )
    await api.call("GET", ME, token=admin.access_token, expect=401)
    await api.call(
        "POST", LOGIN, json={"identifier": admin.email, "password": PASSWORD}, expect=401
    )
    await api.call(
        "POST", LOGIN, json={"identifier": admin.email, "password": new_password}, expect=200
    )
    status, body = await api.call(
        "POST",
        "/api/v1/auth/reset-password",
        json={"token": token, "new_password": "yet another passphrase"},
    )
    assert status == 422
    assert body["errors"][0]["field"] == "token"


async def test_expired_reset_token_is_refused(api: Api) -> None:
    admin = await api.tenant()
    await api.call(
        "POST", "/api/v1/auth/request-password-reset", json={"email": admin.email}, expect=200
    )
    token = api.notifier.last_secret("password_reset", admin.email)
    async with api.app[DATABASE].transaction(Scope.system()) as session:
        await session.execute(
            update(PasswordResetToken).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    status, _ = await api.call(
        "POST",
        "/api/v1/auth/reset-password",
        json={"token": token, "new_password": "a brand new passphrase"},
    )
    assert status == 422
    await api.call(
        "POST", LOGIN, json={"identifier": admin.email, "password": PASSWORD}, expect=200
    )


async def test_admin_creates_staff_and_roles_are_checked(api: Api) -> None:
    admin = await api.tenant()
    agent = await api.user(admin, Role.SENIOR_AGENT)
    body = {
        "email": "junior@example.com",
        "password": PASSWORD,
        "first_name": "J",
        "last_name": "A",
        "role": "junior_agent",
    }
    await api.call("POST", "/api/v1/users", json=body, token=agent.access_token, expect=403)
    provider = await api.user(admin, Role.PROVIDER_ADMIN)
    escalate = {**body, "email": "boss@example.com", "role": "super_admin"}
    await api.call("POST", "/api/v1/users", json=escalate, token=provider.access_token, expect=403)
    _, created = await api.call(
        "POST", "/api/v1/users", json=body, token=provider.access_token, expect=201
    )
    _, me = await api.call("GET", ME, token=provider.access_token, expect=200)
    assert created["data"]["tenant_id"] == me["data"]["tenant_id"]
    assert created["data"]["role"] == "junior_agent"


async def test_patch_me_changes_profile_and_password(api: Api) -> None:
    admin = await api.tenant()
    _, other_device = await api.call(
        "POST", LOGIN, json={"identifier": admin.email, "password": PASSWORD}, expect=200
    )
    _, body = await api.call(
        "PATCH", ME, json={"first_name": "Meera"}, token=admin.access_token, expect=200
    )
    assert body["data"]["first_name"] == "Meera"
    status, body = await api.call(
        "PATCH",
        ME,
        json={"current_password": "wrong one!", "new_password": "another passphrase"},
        token=admin.access_token,
    )
    assert status == 422
    assert body["errors"][0]["field"] == "current_password"
    await api.call(
        "PATCH",
        ME,
        json={"current_password": PASSWORD, "new_password": "another passphrase"},
        token=admin.access_token,
        expect=200,
    )
    await api.call("GET", ME, token=admin.access_token, expect=200)
    await api.call("GET", ME, token=other_device["data"]["access_token"], expect=401)


async def _user_count(api: Api, email: str) -> int:
    async with api.app[DATABASE].session(Scope.system()) as session:
        rows = await session.execute(select(User.id).where(User.email == email))
        return len(rows.all())
