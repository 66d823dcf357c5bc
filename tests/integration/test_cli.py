"""The `mitra` command: migrate, tenant and user creation, and start-up errors."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import select

from handlers.cli import main
from mitra.db import Database, Scope
from mitra.models import Role, Tenant, User
from mitra.settings import DatabaseSettings


@pytest.fixture
def sqlite_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("MITRA_DATABASE_URL", url)
    monkeypatch.setenv("MITRA_AUTH_ARGON2_MEMORY_KIB", "8")
    monkeypatch.setenv("MITRA_AUTH_ARGON2_TIME_COST", "1")
    monkeypatch.setenv("MITRA_AUTH_ARGON2_PARALLELISM", "1")
    return url


async def _users(url: str) -> list[tuple[str, Role, str]]:
    database = Database(DatabaseSettings(url=url))
    try:
        async with database.session(Scope.system()) as session:
            rows = await session.execute(
                select(User.email, User.role, Tenant.slug).join(Tenant, Tenant.id == User.tenant_id)
            )
            return [tuple(row) for row in rows]  # type: ignore[misc]
    finally:
        await database.dispose()


def test_migrate_then_create_tenant_and_user(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["migrate"]) == 0
    assert "database at revision" in capsys.readouterr().out
    assert (
        main(
            [
                "tenant",
                "create",
                "shree-agency",
                "--name",
                "Shree Agency",
                "--admin-email",
                "owner@shree.example.com",
                "--admin-password",
                "owner passphrase 1",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "user",
                "create",
                "--tenant",
                "shree-agency",
                "--email",
                "ravi@shree.example.com",
                "--phone",
                "098765 43210",
                "--password",
                "agent passphrase 1",
                "--role",
                "senior_agent",
            ]
        )
        == 0
    )
    users = sorted(asyncio.run(_users(sqlite_url)))
    assert users == [
        ("owner@shree.example.com", Role.SUPER_ADMIN, "shree-agency"),
        ("ravi@shree.example.com", Role.SENIOR_AGENT, "shree-agency"),
    ]


def test_errors_are_one_line_and_nonzero(
    sqlite_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["user", "create", "--tenant", "nope", "--email", "a@example.com",
                 "--password", "passphrase 123", "--role", "junior_agent"]) == 1  # fmt: skip
    assert capsys.readouterr().err.strip() == "mitra: no tenant 'nope'"
    assert main(["tenant", "create", "Bad Slug", "--name", "x", "--admin-email",
                 "a@example.com", "--admin-password", "passphrase 123"]) == 1  # fmt: skip
    assert "slug" in capsys.readouterr().err
    monkeypatch.setenv("MITRA_SERVER_PORT", "not-a-port")
    assert main(["migrate"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "server.port (from MITRA_SERVER_PORT)" in err


def test_a_misspelt_mitra_variable_stops_any_command_naming_the_setting(
    sqlite_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MITRA_DATABSE_URL", "sqlite+aiosqlite:///elsewhere.db")
    assert main(["migrate"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "mitra: unknown environment variable MITRA_DATABSE_URL: no such setting; did you mean"
        " MITRA_DATABASE_URL (database.url)?"
    ]
