"""Real databases for tests: a migrated SQLite template, and a private PostgreSQL database."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from mitra import migrate
from mitra.db import Base, Database
from mitra.settings import DatabaseSettings

DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def postgres_base_url() -> str:
    return os.environ.get("MITRA_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


async def _postgres_reachable(url: str) -> str | None:
    database = Database(DatabaseSettings(url=url))
    try:
        await asyncio.wait_for(database.ping(), 5)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        await database.dispose()
    return None


async def create_private_postgres() -> str:
    """Create a database of our own, so parallel test runs on one server never collide."""
    base = postgres_base_url()
    problem = await _postgres_reachable(base)
    if problem is not None:
        reason = f"PostgreSQL at {make_url(base).render_as_string()} unreachable ({problem})"
        if in_ci():
            pytest.fail(f"{reason}; CI=true requires it", pytrace=False)
        pytest.skip(reason)
    name = f"mitra_test_{uuid.uuid4().hex[:12]}"
    await run_outside_transaction(f'CREATE DATABASE "{name}"')
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    database = Database(DatabaseSettings(url=url))
    try:
        await migrate.upgrade(database)
    finally:
        await database.dispose()
    return url


async def drop_private_postgres(url: str) -> None:
    name = make_url(url).database
    await run_outside_transaction(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def run_outside_transaction(statement: str, base: str | None = None) -> None:
    """Run `statement` on the PostgreSQL server at `base` (the suite's by default) in
    autocommit: CREATE/DROP DATABASE refuse to run inside a transaction block."""
    admin = Database(DatabaseSettings(url=base or postgres_base_url()))
    try:
        async with admin.engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.execute(text(statement))
    finally:
        await admin.dispose()


async def truncate_all(url: str) -> None:
    database = Database(DatabaseSettings(url=url))
    tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
    try:
        async with database.engine.begin() as connection:
            # A test that leaked an open transaction would otherwise make this wait forever.
            await connection.execute(text("SET LOCAL lock_timeout = '10s'"))
            await connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    finally:
        await database.dispose()


async def build_sqlite_template(directory: Path) -> Path:
    path = directory / "template.db"
    database = Database(DatabaseSettings(url=f"sqlite+aiosqlite:///{path}"))
    try:
        await migrate.upgrade(database)
    finally:
        await database.dispose()
    return path


def sqlite_copy(template: Path, directory: Path) -> str:
    target = directory / "mitra.db"
    shutil.copyfile(template, target)
    return f"sqlite+aiosqlite:///{target}"
