"""Tracebacks for the log that keep the frames and the kind of each error but not the data.

A database error's message quotes what was sent: SQLAlchemy appends the bound parameters (an
argon2 hash, an email), asyncpg names the argument it could not encode with its value, and
PostgreSQL's DETAIL repeats a refused row's key. A validation error quotes its input. Their
messages are replaced here, for every log line, by what is safe and still useful: the SQL
(placeholders only), the error's class and its SQLSTATE or SQLite error name.
"""

from __future__ import annotations

import traceback
from types import TracebackType

from pydantic import ValidationError
from sqlalchemy.exc import StatementError

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]

# The drivers Mitra runs on, and SQLAlchemy's adapters around them (whose errors repeat the
# driver's message).
_DRIVER_MODULES = (
    "asyncpg",
    "sqlite3",
    "aiosqlite",
    "psycopg",
    "sqlalchemy.dialects",
    "sqlalchemy.connectors",
)
_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"


def format_exception(exc_info: ExcInfo) -> str:
    """The whole chain, root cause first, as `traceback` prints it, with redacted messages."""
    chain = _chain(exc_info[1])
    # What a statement failed with is the database's word whatever its class (a bind
    # processor's TypeError can quote the value it could not convert).
    from_database = {
        id(exc.orig) for exc in chain if isinstance(exc, StatementError) and exc.orig is not None
    }
    parts: list[str] = []
    for index, exc in enumerate(chain):
        if index:
            parts.append(_CAUSE if exc.__cause__ is chain[index - 1] else _CONTEXT)
        parts.append("Traceback (most recent call last):\n")
        parts.extend(traceback.format_tb(exc.__traceback__))
        message = safe_message(exc, withhold=id(exc) in from_database)
        parts.append(f"{_name(type(exc))}: {message}\n")
    return "".join(parts).rstrip("\n")


def safe_message(exc: BaseException, *, withhold: bool = False) -> str:
    """`str(exc)`, unless it may quote data: then what is safe of it."""
    if isinstance(exc, StatementError):
        orig = exc.orig
        code = _error_code(orig) if orig is not None else None
        kind = _name(type(orig)) if orig is not None else "error"
        return f"{kind}{f' {code}' if code else ''} (message withheld) [SQL: {exc.statement}]"
    if withhold or type(exc).__module__.startswith(_DRIVER_MODULES):
        code = _error_code(exc)
        return f"{code + ' ' if code else ''}(message withheld)"
    if isinstance(exc, ValidationError):
        errors = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['type']}"
            for error in exc.errors(include_url=False, include_input=False, include_context=False)
        )
        return f"{exc.error_count()} validation error(s) for {exc.title}: {errors}"
    return str(exc)


def _chain(exc: BaseException) -> list[BaseException]:
    found: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and not any(current is seen for seen in found):
        found.append(current)
        if current.__cause__ is not None:
            current = current.__cause__
        elif current.__suppress_context__:
            current = None
        else:
            current = current.__context__
    return found[::-1]


def _error_code(exc: BaseException) -> str | None:
    for candidate in (exc, _attribute(exc, "driver_exception")):
        for name in ("sqlstate", "pgcode", "sqlite_errorname"):
            value = _attribute(candidate, name)
            if isinstance(value, str) and value:
                return value
    return None


def _attribute(value: object, name: str) -> object:
    # Some are properties that raise (SQLAlchemy's emulated DBAPI errors without a driver
    # error), and formatting a log line must not fail.
    try:
        return getattr(value, name, None)
    except Exception:
        return None


def _name(kind: type[BaseException]) -> str:
    module = kind.__module__
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"
