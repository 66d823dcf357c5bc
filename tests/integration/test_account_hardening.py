"""What a stolen access token or a stranger at the login form can no longer do to an account."""

from __future__ import annotations

from typing import Any

import pytest

from mitra.models import Role
from tests.support.api import PASSWORD, Account, Api

LOGIN = "/api/v1/auth/login"
ME = "/api/v1/users/me"
WRONG = "not the password at all"


async def _me(api: Api, account: Account) -> dict[str, Any]:
    _, body = await api.call("GET", ME, token=account.access_token, expect=200)
    data: dict[str, Any] = body["data"]
    return data


async def _login_status(api: Api, identifier: str, password: str) -> tuple[int, dict[str, Any]]:
    return await api.call("POST", LOGIN, json={"identifier": identifier, "password": password})


async def _mfa_on(api: Api, account: Account) -> None:
    await api.call("PATCH", ME, json={"mfa_enabled": True}, token=account.access_token, expect=200)


@pytest.mark.parametrize(
    "change",
    [
        {"mfa_enabled": False},
        {"phone_number": "98765 11111"},
        {"email": "taken-over@example.com"},
        {"new_password": "the attacker's passphrase"},
    ],
    ids=["mfa-off", "phone", "email", "password"],
)
async def test_a_takeover_change_needs_the_current_password(
    api: Api, change: dict[str, Any]
) -> None:
    admin = await api.tenant()
    await _mfa_on(api, admin)
    before = await _me(api, admin)

    status, body = await api.call("PATCH", ME, json=change, token=admin.access_token)
    assert status == 422, body
    assert body["success"] is False
    assert [error["field"] for error in body["errors"]] == ["current_password"]
    assert "required" in body["errors"][0]["message"]

    status, body = await api.call(
        "PATCH", ME, json={**change, "current_password": WRONG}, token=admin.access_token
    )
    assert status == 422, body
    assert body["errors"] == [{"field": "current_password", "message": "is wrong"}]
    assert await _me(api, admin) == before

    await api.call(
        "PATCH",
        ME,
        json={**change, "current_password": PASSWORD},
        token=admin.access_token,
        expect=200,
    )
    after = await _me(api, admin)
    if "mfa_enabled" in change:
        assert after["mfa_enabled"] is False
    if "phone_number" in change:
        assert after["phone_number"] == "+919876511111"
    if "email" in change:
        assert after["email"] == "taken-over@example.com"
        status, _ = await _login_status(api, "taken-over@example.com", PASSWORD)
        assert status == 200


async def test_harmless_changes_need_no_password(api: Api) -> None:
    admin = await api.tenant()
    _, body = await api.call(
        "PATCH",
        ME,
        json={"first_name": "Meera", "mfa_enabled": True},
        token=admin.access_token,
        expect=200,
    )
    assert body["data"]["first_name"] == "Meera"
    assert body["data"]["mfa_enabled"] is True
    # Sending back the email and phone the account already has changes nothing.
    await api.call(
        "PATCH",
        ME,
        json={"email": admin.email.upper(), "mfa_enabled": True},
        token=admin.access_token,
        expect=200,
    )


async def test_a_refused_change_applies_none_of_the_request(api: Api) -> None:
    admin = await api.tenant()
    before = await _me(api, admin)
    status, _ = await api.call(
        "PATCH",
        ME,
        json={"first_name": "Mallory", "email": "mallory@example.com", "current_password": WRONG},
        token=admin.access_token,
    )
    assert status == 422
    assert await _me(api, admin) == before


async def test_an_email_taken_by_another_account_is_409(api: Api) -> None:
    admin = await api.tenant()
    other = await api.tenant()
    status, body = await api.call(
        "PATCH",
        ME,
        json={"email": other.email, "current_password": PASSWORD},
        token=admin.access_token,
    )
    assert status == 409, body
    assert (await _me(api, admin))["email"] == admin.email


async def test_wrong_current_passwords_count_toward_the_login_lockout(api: Api) -> None:
    admin = await api.tenant()
    await _mfa_on(api, admin)
    for _ in range(3):
        status, _ = await _login_status(api, admin.email, WRONG)
        assert status == 401
    off = {"mfa_enabled": False, "current_password": WRONG}
    await api.call("PATCH", ME, json=off, token=admin.access_token, expect=422)
    # The fifth wrong password in a row, whichever door it came through, locks the account.
    status, body = await api.call("PATCH", ME, json=off, token=admin.access_token)
    assert status == 423, body
    assert body["success"] is False
    assert "locked_until" in body

    # Locked: the right password turns nothing off and does not log in.
    right = {"mfa_enabled": False, "current_password": PASSWORD}
    status, again = await api.call("PATCH", ME, json=right, token=admin.access_token)
    assert status == 423
    assert again["locked_until"] == body["locked_until"]
    assert (await _me(api, admin))["mfa_enabled"] is True
    status, _ = await _login_status(api, admin.email, PASSWORD)
    assert status == 401
    locks = [n for n in api.notifier.sent if n.purpose == "account_locked"]
    assert [n.to for n in locks] == [admin.email]


async def test_guessing_through_a_stolen_token_locks_the_login_too(api: Api) -> None:
    admin = await api.tenant()
    guess = {"email": "thief@example.com", "current_password": WRONG}
    statuses = [
        (await api.call("PATCH", ME, json=guess, token=admin.access_token))[0] for _ in range(6)
    ]
    assert statuses == [422, 422, 422, 422, 423, 423]
    status, _ = await _login_status(api, admin.email, PASSWORD)
    assert status == 401
    assert (await _me(api, admin))["email"] == admin.email


async def test_a_right_current_password_resets_the_count(api: Api) -> None:
    admin = await api.tenant()
    for _ in range(4):
        await _login_status(api, admin.email, WRONG)
    await api.call(
        "PATCH",
        ME,
        json={"phone_number": "9876522222", "current_password": PASSWORD},
        token=admin.access_token,
        expect=200,
    )
    for _ in range(4):
        status, _ = await _login_status(api, admin.email, WRONG)
        assert status == 401
    status, _ = await _login_status(api, admin.email, PASSWORD)
    assert status == 200


async def test_locked_and_unknown_accounts_answer_alike(api: Api) -> None:
    """No enumeration by 423: the same guesses at a real and a made-up account read the same."""
    admin = await api.tenant()
    unknown = f"nobody-{admin.tenant_slug}@example.com"
    answers: dict[str, list[tuple[int, dict[str, Any]]]] = {admin.email: [], unknown: []}
    for identifier, seen in answers.items():
        for _ in range(7):
            seen.append(await _login_status(api, identifier, WRONG))
        seen.append(await _login_status(api, identifier, PASSWORD))
    assert answers[admin.email] == answers[unknown]
    assert {status for status, _ in answers[unknown]} == {401}
    assert answers[unknown][0][1]["message"] == "invalid credentials"
    # The account did lock: its owner is told, not the stranger at the login form.
    locks = [n for n in api.notifier.sent if n.purpose == "account_locked"]
    assert [n.to for n in locks] == [admin.email]
    assert "reset your password" in locks[0].body


async def test_a_password_reset_lifts_the_lock(api: Api) -> None:
    admin = await api.tenant()
    for _ in range(5):
        await _login_status(api, admin.email, WRONG)
    await api.call(
        "POST", "/api/v1/auth/request-password-reset", json={"email": admin.email}, expect=200
    )
    token = api.notifier.last_secret("password_reset", admin.email)
    new_password = "a fresh passphrase"
    await api.call(
        "POST",
        "/api/v1/auth/reset-password",
        json={"token": token, "new_password": new_password},
        expect=200,
    )
    status, _ = await _login_status(api, admin.email, new_password)
    assert status == 200


async def test_passwords_are_not_trimmed(api: Api) -> None:
    admin = await api.tenant()
    padded = "  padded passphrase  "
    body = {
        "tenant": admin.tenant_slug,
        "email": "padded@example.com",
        "password": padded,
        "first_name": "Priya",
        "last_name": "Sharma",
    }
    await api.call("POST", "/api/v1/auth/register", json=body, expect=201)
    holder = Account("padded@example.com", padded, admin.tenant_slug, Role.POLICYHOLDER)
    assert (await _login_status(api, holder.email, "padded passphrase"))[0] == 401
    await api.login(holder)

    changed = " changed passphrase\t"
    await api.call(
        "PATCH",
        ME,
        json={"current_password": padded, "new_password": changed},
        token=holder.access_token,
        expect=200,
    )
    assert (await _login_status(api, holder.email, changed.strip()))[0] == 401
    assert (await _login_status(api, holder.email, changed))[0] == 200

    await api.call(
        "POST", "/api/v1/auth/request-password-reset", json={"email": holder.email}, expect=200
    )
    token = api.notifier.last_secret("password_reset", holder.email)
    reset = "reset passphrase "
    await api.call(
        "POST",
        "/api/v1/auth/reset-password",
        json={"token": token, "new_password": reset},
        expect=200,
    )
    assert (await _login_status(api, holder.email, reset.strip()))[0] == 401
    assert (await _login_status(api, holder.email, reset))[0] == 200


async def test_staff_passwords_are_not_trimmed(api: Api) -> None:
    admin = await api.tenant()
    body = {
        "email": "spaced@example.com",
        "password": " staff passphrase ",
        "first_name": "S",
        "last_name": "P",
        "role": "junior_agent",
    }
    await api.call("POST", "/api/v1/users", json=body, token=admin.access_token, expect=201)
    assert (await _login_status(api, "spaced@example.com", "staff passphrase"))[0] == 401
    assert (await _login_status(api, "spaced@example.com", " staff passphrase "))[0] == 200


async def test_the_openapi_document_states_the_new_rules(api: Api) -> None:
    response = await api.client.get("/api/v1/openapi.json")
    document = await response.json()
    update_me = document["components"]["schemas"]["UpdateMeRequest"]["properties"]
    assert {"email", "current_password", "new_password"} <= set(update_me)
    assert "current_password" in document["paths"]["/api/v1/users/me"]["patch"]["description"]
    assert "423" in document["paths"]["/api/v1/users/me"]["patch"]["responses"]
    assert "423" not in document["paths"]["/api/v1/auth/login"]["post"]["responses"]
