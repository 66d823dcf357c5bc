"""Registration's per-address limit and the bound on password hashes running at once."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Literal, TypeVar

import argon2
from aiohttp.test_utils import TestClient

from handlers.app import create_app
from mitra.auth import PasswordHasher
from tests.conftest import SettingsFactory
from tests.support.api import PASSWORD, Api
from tests.support.notifier import RecordingNotifier

T = TypeVar("T")
WAIT = 5.0


class CountingEngine(argon2.PasswordHasher):
    """Cheap argon2 that records how many hashes run at once; `gate`, while clear, holds each
    one inside its thread (as a slow hash would), and `hold` adds a pause so a burst overlaps."""

    def __init__(self, hold: float = 0.0) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self.hold = hold
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.running = 0
        self.most = 0
        self._lock = threading.Lock()

    def _counted(self, work: Callable[[], T]) -> T:
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
        self.entered.set()
        try:
            self.gate.wait(WAIT)
            if self.hold:
                time.sleep(self.hold)
            return work()
        finally:
            with self._lock:
                self.running -= 1

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        return self._counted(lambda: super(CountingEngine, self).hash(password, salt=salt))

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        return self._counted(lambda: super(CountingEngine, self).verify(hash, password))


def registration(tenant: str) -> dict[str, str]:
    return {
        "tenant": tenant,
        "email": f"holder-{uuid.uuid4().hex[:8]}@example.com",
        "password": PASSWORD,
        "first_name": "Priya",
        "last_name": "Sharma",
    }


async def started(
    aiohttp_client: Any,
    make_settings: SettingsFactory,
    engine: CountingEngine | None = None,
    **sections: dict[str, Any],
) -> tuple[Api, str]:
    settings = make_settings(**sections)
    hasher = PasswordHasher(settings.auth, engine) if engine else None
    notifier = RecordingNotifier()
    app = create_app(settings, notifier=notifier, hasher=hasher)
    api = Api(await aiohttp_client(app), app, notifier)
    admin = await api.tenant()
    return api, admin.tenant_slug


async def register(
    client: TestClient[Any, Any], tenant: str, address: str | None = None
) -> tuple[int, dict[str, Any], str | None]:
    headers = {"X-Forwarded-For": address} if address else {}
    response = await client.post(
        "/api/v1/auth/register", json=registration(tenant), headers=headers
    )
    return response.status, await response.json(), response.headers.get("Retry-After")


async def test_the_eleventh_registration_from_one_address_gets_429(
    aiohttp_client: Any, make_settings: SettingsFactory
) -> None:
    api, tenant = await started(
        aiohttp_client,
        make_settings,
        auth={"rate_limit_register_per_ip": 10},
        server={"trusted_proxy_count": 1},
    )
    for _ in range(10):
        status, body, _ = await register(api.client, tenant, "203.0.113.7")
        assert status == 201, body
    status, body, retry_after = await register(api.client, tenant, "203.0.113.7")
    assert status == 429
    assert body["success"] is False
    assert retry_after is not None
    assert 1 <= int(retry_after) <= 60
    # Another client behind the same proxy still registers.
    status, body, _ = await register(api.client, tenant, "203.0.113.8")
    assert status == 201, body


async def test_a_forged_forwarded_for_does_not_escape_the_limit(
    aiohttp_client: Any, make_settings: SettingsFactory
) -> None:
    # No trusted proxy: the limit is the TCP peer's, whatever X-Forwarded-For claims.
    api, tenant = await started(
        aiohttp_client, make_settings, auth={"rate_limit_register_per_ip": 3}
    )
    statuses = [(await register(api.client, tenant, f"198.51.100.{n}"))[0] for n in range(4)]
    assert statuses == [201, 201, 201, 429]


async def test_a_burst_of_registrations_never_hashes_more_than_the_bound_at_once(
    aiohttp_client: Any, make_settings: SettingsFactory
) -> None:
    engine = CountingEngine(hold=0.02)
    api, tenant = await started(
        aiohttp_client, make_settings, engine, auth={"argon2_max_concurrent": 3}
    )
    engine.most = 0
    results = await asyncio.gather(*(register(api.client, tenant) for _ in range(40)))
    assert [status for status, _, _ in results] == [201] * 40
    assert engine.most == 3


async def test_a_request_that_waits_too_long_for_a_hash_gets_503_and_retries(
    aiohttp_client: Any, make_settings: SettingsFactory
) -> None:
    engine = CountingEngine()
    api, tenant = await started(
        aiohttp_client,
        make_settings,
        engine,
        auth={"argon2_max_concurrent": 1, "argon2_wait_seconds": 0.2},
    )
    engine.gate.clear()
    first = asyncio.ensure_future(register(api.client, tenant))
    assert await asyncio.to_thread(engine.entered.wait, WAIT)
    # A login needs a hash too, and the one slot is taken: told to come back, not queued.
    response = await api.client.post(
        "/api/v1/auth/login", json={"identifier": "nobody@example.com", "password": PASSWORD}
    )
    body = await response.json()
    assert response.status == 503, body
    assert body["success"] is False
    assert response.headers["Retry-After"] == "1"
    engine.gate.set()
    status, body, _ = await first
    assert status == 201, body
    status, body, _ = await register(api.client, tenant)
    assert status == 201, body
    assert engine.most == 1
