"""Fixtures every ring shares: settings, real databases (SQLite and PostgreSQL), the app."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
import uvloop
from aiohttp import web
from aiohttp.test_utils import TestClient

from handlers.app import create_app
from mitra.settings import Settings, load_settings
from tests.support.api import Api
from tests.support.databases import (
    build_sqlite_template,
    create_private_postgres,
    drop_private_postgres,
    sqlite_copy,
    truncate_all,
)
from tests.support.fake_graph import FakeGraph
from tests.support.notifier import RecordingNotifier
from tests.support.whatsapp import fake_graph_server

T = TypeVar("T")

# Cheap hashing keeps the suite fast; production parameters are the settings' defaults.
FAST_AUTH = {
    "argon2_time_cost": 1,
    "argon2_memory_kib": 8,
    "argon2_parallelism": 1,
    "rate_limit_per_ip": 1000,
    "rate_limit_per_account": 1000,
    "rate_limit_register_per_ip": 1000,
}


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Any]:
    """The suite runs on the loop `mitra serve` runs on (server.event_loop, uvloop by default);
    MITRA_TEST_EVENT_LOOP=asyncio runs it on the standard library's loop instead."""
    if os.environ.get("MITRA_TEST_EVENT_LOOP", "uvloop") == "asyncio":
        return {"asyncio": asyncio.new_event_loop}
    return {"uvloop": uvloop.new_event_loop}


def run_in_own_loop(coroutine: Coroutine[Any, Any, T]) -> T:
    """Session fixtures may be first asked for from inside a test's running loop."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return run_in_own_loop(build_sqlite_template(tmp_path_factory.mktemp("sqlite-template")))


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    url = run_in_own_loop(create_private_postgres())
    yield url
    run_in_own_loop(drop_private_postgres(url))


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path
) -> AsyncIterator[str]:
    """Each test that uses it runs twice: on SQLite and on PostgreSQL, each starting empty."""
    if request.param == "sqlite":
        yield sqlite_copy(sqlite_template, tmp_path)
        return
    url = request.getfixturevalue("postgres_url")
    await truncate_all(url)
    yield url


SettingsFactory = Callable[..., Settings]


@pytest.fixture
def make_settings(database_url: str) -> SettingsFactory:
    """Settings for a test: the test database, fast hashing, overridable per section."""

    def build(**sections: dict[str, Any]) -> Settings:
        environ = {"MITRA_DATABASE_URL": database_url}
        # The assistant answers customers in its own tests only: elsewhere its replies would be
        # messages (and WhatsApp sends) the other tests do not expect.
        merged: dict[str, dict[str, Any]] = {
            "auth": dict(FAST_AUTH),
            "server": {},
            "chatbot": {"enabled": False},
        }
        for section, values in sections.items():
            merged.setdefault(section, {}).update(values)
        for section, values in merged.items():
            for key, value in values.items():
                text = ",".join(value) if isinstance(value, list) else str(value)
                environ[f"MITRA_{section.upper()}_{key.upper()}"] = text
        environ.setdefault("MITRA_LOGGING_FORMAT", "text")
        return load_settings(environ=environ)

    return build


@pytest.fixture
def settings(make_settings: SettingsFactory) -> Settings:
    return make_settings()


@pytest.fixture
async def graph() -> AsyncIterator[tuple[FakeGraph, str]]:
    """A local server speaking Meta's Graph API: (the fake, its base URL)."""
    async with fake_graph_server() as served:
        yield served


@pytest.fixture
def notifier() -> RecordingNotifier:
    return RecordingNotifier()


@pytest.fixture
def app(settings: Settings, notifier: RecordingNotifier) -> web.Application:
    return create_app(settings, notifier=notifier)


@pytest.fixture
async def client(aiohttp_client: Any, app: web.Application) -> TestClient[Any, Any]:
    client: TestClient[Any, Any] = await aiohttp_client(app)
    return client


@pytest.fixture
async def api(
    client: TestClient[Any, Any], app: web.Application, notifier: RecordingNotifier
) -> Api:
    return Api(client, app, notifier)
