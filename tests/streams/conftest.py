"""Fixtures for the streams suites: the tansu broker, one backend per parameter, unique names."""

from __future__ import annotations

import asyncio
import inspect
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from mitra.db import Database, Scope
from mitra.models import Tenant
from mitra.settings import DatabaseSettings
from streams.base import Streams
from streams.envelope import Event
from tests.streams._tansu import BrokerUnavailable, run_tansu

# Short group timeouts: tansu holds a join for about half the session timeout.
KAFKA_TEST_TUNING = {
    "session_timeout_ms": 2000,
    "heartbeat_interval_ms": 200,
    "rebalance_timeout_ms": 1000,
    "request_timeout_ms": 5000,
    "publish_timeout": 5.0,
    "reconnect_initial": 0.1,
    "reconnect_max": 1.0,
    "health_interval": 0.5,
}
WAIT = 20.0  # seconds any condition may take before a test fails


@pytest.fixture(scope="session")
def tansu_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`host:port` of a tansu broker for the whole session (skipped without it, unless CI)."""
    log_path: Path = tmp_path_factory.mktemp("tansu") / "tansu.log"
    try:
        with run_tansu(log_path) as bootstrap:
            yield bootstrap
            return
    except BrokerUnavailable as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"tansu broker required in CI: {exc}")
        pytest.skip(f"tansu broker unavailable: {exc}")


def make_kafka(bootstrap: str, **options: object) -> Streams:
    from streams.kafka import KafkaStreams, KafkaTuning

    tuning = KafkaTuning(**{**KAFKA_TEST_TUNING, **options})  # type: ignore[arg-type]
    # tansu answers InitProducerId with an error, so the idempotent producer is off here.
    return KafkaStreams(bootstrap, tuning=tuning, enable_idempotence=False)


@pytest.fixture(params=["memory", pytest.param("kafka", marks=pytest.mark.kafka)])
def streams_backend(request: pytest.FixtureRequest) -> str:
    """The backend name; the contract suite runs once per backend."""
    return str(request.param)


@pytest.fixture
async def bus(streams_backend: str, request: pytest.FixtureRequest) -> AsyncIterator[Streams]:
    """A started backend of the parametrized kind, stopped after the test."""
    if streams_backend == "kafka":
        bootstrap = request.getfixturevalue("tansu_broker")
        streams = make_kafka(bootstrap)
    else:
        from streams.memory import MemoryStreams

        streams = MemoryStreams()
    await streams.start()
    yield streams
    await streams.stop()


@pytest.fixture
def unique() -> Callable[[str], str]:
    """Names unique to this test (tansu keeps topics and groups for the whole session)."""
    token = uuid.uuid4().hex[:8]
    return lambda name: f"t{token}.{name}"


class Collector:
    """A handler that keeps what it receives and lets a test wait for a condition on it."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._changed = asyncio.Event()

    async def __call__(self, event: Event) -> None:
        self.events.append(event)
        self._changed.set()

    async def until(self, condition: Callable[[], bool], within: float = WAIT) -> None:
        async with asyncio.timeout(within):
            while not condition():
                self._changed.clear()
                await self._changed.wait()

    async def count(self, n: int, within: float = WAIT) -> list[Event]:
        await self.until(lambda: len(self.events) >= n, within)
        return self.events


async def eventually(condition: Callable[[], bool | Awaitable[bool]], within: float = WAIT) -> None:
    """Poll a condition that nothing signals (assignments, health) until it holds."""
    async with asyncio.timeout(within):
        while True:
            result = condition()
            if await result if inspect.isawaitable(result) else result:
                return
            await asyncio.sleep(0.02)


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    """The test's database (SQLite or PostgreSQL, from the `database_url` parameter)."""
    db = Database(DatabaseSettings(url=database_url))
    yield db
    await db.dispose()


@pytest.fixture
async def tenant_id(database: Database) -> uuid.UUID:
    async with database.transaction(Scope.system()) as session:
        tenant = Tenant(id=uuid.uuid4(), slug=f"t-{uuid.uuid4().hex[:8]}", name="Streams")
        session.add(tenant)
    return tenant.id
