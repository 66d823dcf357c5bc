"""Logged tracebacks keep every frame and error kind, and withhold what errors quote."""

from __future__ import annotations

import sqlite3

import pytest
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import IntegrityError

from mitra.observability.tracebacks import ExcInfo, format_exception


def caught(fail: object) -> ExcInfo:
    try:
        fail()  # type: ignore[operator]
    except Exception as exc:
        return type(exc), exc, exc.__traceback__
    raise AssertionError("did not fail")


# Built, so that the source lines the traceback quotes do not hold them.
EMAIL = "@".join(("asha", "example.in"))
PASSWORD = "-".join(("hunter2", "secret"))


def test_a_database_error_keeps_its_statement_and_code_but_not_its_values() -> None:
    def insert() -> None:
        try:
            raise sqlite3.IntegrityError(f"UNIQUE failed: users.email = {EMAIL!r}")
        except sqlite3.IntegrityError as exc:
            exc.sqlite_errorname = "SQLITE_CONSTRAINT_UNIQUE"
            raise IntegrityError("INSERT INTO users (email) VALUES (?)", (EMAIL,), exc) from exc

    text = format_exception(caught(insert))
    assert EMAIL not in text
    assert "sqlalchemy.exc.IntegrityError: sqlite3.IntegrityError" in text
    assert "SQLITE_CONSTRAINT_UNIQUE" in text
    assert "[SQL: INSERT INTO users (email) VALUES (?)]" in text
    assert "The above exception was the direct cause" in text
    assert "in insert" in text


def test_an_error_while_handling_another_shows_both_in_order() -> None:
    def handle() -> None:
        try:
            raise KeyError("first")
        except KeyError:
            raise RuntimeError("second")  # noqa: B904 (the implicit chain is what is tested)

    text = format_exception(caught(handle))
    assert text.index("KeyError: 'first'") < text.index("During handling")
    assert text.index("During handling") < text.index("RuntimeError: second")


def test_a_validation_error_names_the_field_but_not_the_input() -> None:
    class Login(BaseModel):
        password: int

    with pytest.raises(ValidationError) as raised:
        Login.model_validate({"password": PASSWORD})
    text = format_exception((ValidationError, raised.value, raised.value.__traceback__))
    assert PASSWORD not in text
    assert "password: int_parsing" in text
