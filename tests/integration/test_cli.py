"""The `mitra` command: migrate, tenant and user creation, and start-up errors."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from handlers.cli import main
from mitra.auth import PasswordHasher
from mitra.db import Database, Scope
from mitra.models import Role, Tenant, User
from mitra.settings import AuthSettings, DatabaseSettings

REPO_ROOT = Path(__file__).resolve().parents[2]


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


async def _password_matches(url: str, email: str, password: str) -> bool:
    """Whether `email`'s stored hash is of `password`: what a login with it would check."""
    database = Database(DatabaseSettings(url=url))
    try:
        async with database.session(Scope.system()) as session:
            query = select(User.password_hash).where(User.email == email)
            stored = (await session.execute(query)).scalar_one()
    finally:
        await database.dispose()
    fast = AuthSettings(argon2_memory_kib=8, argon2_time_cost=1, argon2_parallelism=1)
    return await PasswordHasher(fast).verify(stored, password)


def _stdin(monkeypatch: pytest.MonkeyPatch, text: str, *, tty: bool = False) -> None:
    stdin = io.StringIO(text)
    stdin.isatty = lambda: tty  # type: ignore[method-assign]
    monkeypatch.setattr("sys.stdin", stdin)


def test_migrate_then_create_tenant_and_user(
    sqlite_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["migrate"]) == 0
    assert "database at revision" in capsys.readouterr().out
    _stdin(monkeypatch, "owner passphrase 1\n")
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
                "--password-stdin",
            ]
        )
        == 0
    )
    _stdin(monkeypatch, "agent passphrase 1\n")
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
                "--password-stdin",
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


def test_a_password_from_stdin_is_kept_as_typed_but_for_the_line_break(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _stdin(monkeypatch, "  spaced passphrase  \r\nsecond line is not read\n")
    create = ["tenant", "create", "acme", "--name", "Acme", "--admin-email", "o@acme.example.com"]
    assert main([*create, "--password-stdin"]) == 0
    assert asyncio.run(_password_matches(sqlite_url, "o@acme.example.com", "  spaced passphrase  "))


def test_without_stdin_flag_a_terminal_is_prompted_twice(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _stdin(monkeypatch, "", tty=True)
    answers = iter(["prompted passphrase", "prompted passphrase", "one", "other"])
    prompts: list[str] = []

    def getpass(prompt: str) -> str:
        prompts.append(prompt)
        return next(answers)

    monkeypatch.setattr("getpass.getpass", getpass)
    create = ["tenant", "create", "acme", "--name", "Acme", "--admin-email", "o@acme.example.com"]
    assert main(create) == 0
    assert prompts == ["admin password: ", "admin password (again): "]
    assert asyncio.run(_password_matches(sqlite_url, "o@acme.example.com", "prompted passphrase"))
    other = [
        "user",
        "create",
        "--tenant",
        "acme",
        "--email",
        "x@acme.example.com",
        "--role",
        "junior_agent",
    ]
    assert main(other) == 2  # the two answers differ
    assert [email for email, _, _ in asyncio.run(_users(sqlite_url))] == ["o@acme.example.com"]


@pytest.mark.parametrize(
    ("argv_tail", "stdin", "message"),
    [
        (
            ["--admin-password", "owner passphrase 1"],
            "",
            "mitra: passwords are not taken from the command line (ps and shell history show"
            " them); pipe it with --password-stdin or answer the prompt",
        ),
        ([], "", "mitra: no terminal to prompt for admin password; pipe it with --password-stdin"),
        (["--password-stdin"], "", "mitra: admin password is empty"),
        (["--password-stdin"], "\n", "mitra: admin password is empty"),
    ],
)
def test_a_password_that_cannot_be_read_is_one_line_exit_2_and_creates_nothing(
    sqlite_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    *,
    argv_tail: list[str],
    stdin: str,
    message: str,
) -> None:
    _stdin(monkeypatch, stdin)
    create = ["tenant", "create", "acme", "--name", "Acme", "--admin-email", "o@acme.example.com"]
    assert main([*create, *argv_tail]) == 2
    assert capsys.readouterr().err.splitlines() == [message]
    assert not (Path(sqlite_url.removeprefix("sqlite+aiosqlite:///"))).exists()


def test_the_console_script_reads_the_password_from_a_pipe(sqlite_url: str, tmp_path: Path) -> None:
    """As an operator (or a provisioning script) runs it: a real process, the password piped in."""
    done = subprocess.run(
        [sys.executable, "-m", "handlers.cli", "tenant", "create", "acme", "--name", "Acme",
         "--admin-email", "o@acme.example.com", "--password-stdin"],
        input="piped passphrase 1\n", capture_output=True, text=True, cwd=tmp_path,
        env={"PATH": "", "PYTHONPATH": str(REPO_ROOT), "MITRA_DATABASE_URL": sqlite_url,
             "MITRA_AUTH_ARGON2_MEMORY_KIB": "8", "MITRA_AUTH_ARGON2_TIME_COST": "1",
             "MITRA_AUTH_ARGON2_PARALLELISM": "1"},
        check=False, timeout=120,
    )  # fmt: skip
    assert (done.returncode, done.stderr) == (0, "")
    assert asyncio.run(_password_matches(sqlite_url, "o@acme.example.com", "piped passphrase 1"))


def test_errors_are_one_line_and_nonzero(
    sqlite_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _stdin(monkeypatch, "passphrase 123\n")
    assert main(["user", "create", "--tenant", "nope", "--email", "a@example.com",
                 "--password-stdin", "--role", "junior_agent"]) == 1  # fmt: skip
    assert capsys.readouterr().err.strip() == "mitra: no tenant 'nope'"
    _stdin(monkeypatch, "passphrase 123\n")
    assert main(["tenant", "create", "Bad Slug", "--name", "x", "--admin-email",
                 "a@example.com", "--password-stdin"]) == 1  # fmt: skip
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
