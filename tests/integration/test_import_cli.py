"""`mitra import`: the import pipeline from a terminal, its summary and its exit codes."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from handlers.cli import main
from tests.support.imports import csv_bytes, xlsx_bytes

ROWS = [
    ["Customer Name", "Mobile"],
    ["Ravi Kumar", "98765 43210"],
    ["Sita Devi", "+91 98765 43211"],
]


@pytest.fixture
def tenant(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("MITRA_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("MITRA_IMPORTS_DIRECTORY", str(tmp_path / "imports"))
    for name, value in (("MEMORY_KIB", "8"), ("TIME_COST", "1"), ("PARALLELISM", "1")):
        monkeypatch.setenv(f"MITRA_AUTH_ARGON2_{name}", value)
    for command in (
        ["tenant", "create", "shree", "--name", "Shree", "--admin-email", "o@shree.example.com"],
        ["user", "create", "--tenant", "shree", "--email", "ravi@shree.example.com",
         "--role", "senior_agent"],
    ):  # fmt: skip
        monkeypatch.setattr("sys.stdin", io.StringIO("a long passphrase 1\n"))
        assert main([*command, "--password-stdin"]) == 0
    return "shree"


def run(path: Path, tenant: str, *extra: str) -> int:
    return main(
        ["import", str(path), "--tenant", tenant, "--agent", "Ravi@shree.example.com",
         "--type", "customers", *extra]
    )  # fmt: skip


def test_an_import_from_the_command_line(
    tenant: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    book = tmp_path / "book.xlsx"
    book.write_bytes(xlsx_bytes(ROWS))
    capsys.readouterr()
    assert run(book, tenant) == 0
    out = capsys.readouterr().out
    assert "completed; 2 of 2 rows: 2 created, 0 updated, 0 unchanged, 0 failed" in out
    assert run(book, tenant) == 0
    assert "imported before" in capsys.readouterr().out
    assert run(book, tenant, "--force") == 0
    assert "0 created, 0 updated, 2 unchanged" in capsys.readouterr().out


def test_failed_rows_and_refused_files_exit_non_zero(
    tenant: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    book = tmp_path / "book.csv"
    book.write_bytes(csv_bytes([*ROWS, ["Nobody", "12"]]))
    capsys.readouterr()
    assert run(book, tenant) == 1
    captured = capsys.readouterr()
    assert "completed_with_errors; 3 of 3 rows: 2 created" in captured.out
    assert "1 failed" in captured.out
    disguised = tmp_path / "book.xlsx"
    disguised.write_bytes(csv_bytes(ROWS))
    assert run(disguised, tenant) == 1
    assert "named .xlsx but its content is text" in capsys.readouterr().err
    assert run(tmp_path / "missing.csv", tenant) == 2
    assert not list((tmp_path / "imports").iterdir())
