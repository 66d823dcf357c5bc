"""HTTP behaviour every endpoint shares: envelopes, request ids, limits, CORS, hosts, health."""

from __future__ import annotations

import logging
import socket
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from handlers.app import add_readiness_check, create_app
from mitra.settings import Settings
from tests.conftest import SettingsFactory
from tests.support.api import Api
from tests.support.notifier import RecordingNotifier


async def test_unknown_route_and_wrong_method_are_envelopes(client: TestClient[Any, Any]) -> None:
    response = await client.get("/api/v1/nowhere")
    assert response.status == 404
    body = await response.json()
    assert body == {"success": False, "message": "no such route", "errors": []}
    response = await client.delete("/api/v1/auth/login")
    assert response.status == 405
    assert "POST" in response.headers["Allow"]
    assert (await response.json())["success"] is False


async def test_malformed_json_says_what_is_wrong(client: TestClient[Any, Any]) -> None:
    response = await client.post(
        "/api/v1/auth/login", data=b'{"identifier": ', headers={"Content-Type": "application/json"}
    )
    assert response.status == 400
    body = await response.json()
    assert body["message"] == "malformed JSON"
    assert body["errors"][0]["message"].startswith("malformed JSON:")
    response = await client.post(
        "/api/v1/auth/login", data=b"[1, 2]", headers={"Content-Type": "application/json"}
    )
    assert response.status == 400
    assert (await response.json())["message"] == "expected a JSON object"
    response = await client.post("/api/v1/auth/login", data=b"identifier=x")
    assert response.status == 400
    assert "Content-Type" in (await response.json())["message"]


async def test_oversized_body_is_413(client: TestClient[Any, Any], settings: Settings) -> None:
    big = orjson.dumps({"identifier": "x" * settings.server.max_body_bytes, "password": "y"})
    response = await client.post(
        "/api/v1/auth/login", data=big, headers={"Content-Type": "application/json"}
    )
    assert response.status == 413
    assert (await response.json())["success"] is False


async def test_request_id_is_kept_or_made_and_logged(
    client: TestClient[Any, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mitra.http")
    response = await client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert response.headers["X-Request-ID"] == "abc-123"
    response = await client.get("/health", headers={"X-Request-ID": "bad id with spaces"})
    generated = response.headers["X-Request-ID"]
    assert generated != "bad id with spaces"
    assert len(generated) == 32
    lines = [r for r in caplog.records if r.name == "mitra.http" and r.getMessage() == "request"]
    assert len(lines) == 2
    fields = lines[0].fields  # type: ignore[attr-defined]
    assert fields["method"] == "GET"
    assert fields["route"] == "/health"
    assert fields["status"] == 200
    assert fields["duration_ms"] >= 0


async def test_unhandled_error_is_500_with_request_id_and_no_trace(
    aiohttp_client: Any, settings: Settings
) -> None:
    app = create_app(settings, notifier=RecordingNotifier())

    async def explode(request: web.Request) -> web.Response:
        raise RuntimeError("secret internals")

    app.router.add_get("/boom", explode)
    client = await aiohttp_client(app)
    response = await client.get("/boom", headers={"X-Request-ID": "req-42"})
    assert response.status == 500
    text = await response.text()
    assert "secret internals" not in text
    assert "Traceback" not in text
    body = orjson.loads(text)
    assert body["success"] is False
    assert body["request_id"] == "req-42"


async def test_cors_only_for_configured_origins(
    aiohttp_client: Any, make_settings: SettingsFactory
) -> None:
    settings = make_settings(server={"cors_origins": ["https://app.example.com"]})
    client = await aiohttp_client(create_app(settings, notifier=RecordingNotifier()))
    preflight = await client.options(
        "/api/v1/auth/login",
        headers={
            "Origin": "https://app.example.com",
            "Access-Control-Request-Method": "POST",
        },
    )
    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    foreign = await client.get("/health", headers={"Origin": "https://evil.example.com"})
    assert "Access-Control-Allow-Origin" not in foreign.headers


async def test_allowed_hosts(aiohttp_client: Any, make_settings: SettingsFactory) -> None:
    settings = make_settings(server={"allowed_hosts": ["mitra.example.com"]})
    client = await aiohttp_client(create_app(settings, notifier=RecordingNotifier()))
    refused = await client.get("/health")
    assert refused.status == 400
    assert (await refused.json())["errors"][0]["field"] == "Host"
    served = await client.get("/health", headers={"Host": "mitra.example.com:8080"})
    assert served.status == 200


async def test_ready_reports_each_check(
    aiohttp_client: Any, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(settings, notifier=RecordingNotifier())

    async def broken() -> None:
        raise ConnectionError("broker unreachable")

    client = await aiohttp_client(app)
    response = await client.get("/ready")
    assert response.status == 200
    checks = (await response.json())["data"]["checks"]
    assert checks == {"database": {"ok": True}, "streams": {"ok": True}, "actors": {"ok": True}}
    add_readiness_check(app, "search", broken)
    response = await client.get("/ready")
    assert response.status == 503
    body = await response.json()
    assert body["message"] == "not ready: search"
    assert body["errors"] == [{"field": "search", "message": "broker unreachable"}]
    assert body["checks"]["database"] == {"ok": True}


async def test_a_kafka_broker_down_at_start_up_is_not_ready_not_a_crash(
    aiohttp_client: Any, make_settings: SettingsFactory
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    settings = make_settings(streams={"url": f"kafka://127.0.0.1:{closed_port}"})
    client = await aiohttp_client(create_app(settings, notifier=RecordingNotifier()))
    response = await client.get("/ready")
    assert response.status == 503
    body = await response.json()
    assert body["message"] == "not ready: streams"
    assert body["checks"]["database"] == {"ok": True}
    assert (await client.get("/health")).status == 200


async def test_metrics_count_requests_by_route(client: TestClient[Any, Any], api: Api) -> None:
    await client.get("/health")
    await client.get("/health")
    await client.get("/api/v1/users/me")
    response = await client.get("/metrics")
    assert response.status == 200
    text = await response.text()
    assert 'mitra_http_requests_total{method="GET",route="/health",status="200"} 2' in text
    assert 'route="/api/v1/users/me",status="401"' in text
    assert "mitra_http_request_duration_seconds_bucket" in text


async def test_login_is_rate_limited_per_ip(
    aiohttp_client: Any, make_settings: SettingsFactory
) -> None:
    settings = make_settings(auth={"rate_limit_per_ip": 3, "rate_limit_per_account": 100})
    client = await aiohttp_client(create_app(settings, notifier=RecordingNotifier()))
    statuses = []
    for attempt in range(4):
        response = await client.post(
            "/api/v1/auth/login",
            json={"identifier": f"user{attempt}@example.com", "password": "nope"},
        )
        statuses.append(response.status)
    assert statuses == [401, 401, 401, 429]
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert (await response.json())["success"] is False


async def test_login_is_rate_limited_per_account(
    aiohttp_client: Any, make_settings: SettingsFactory
) -> None:
    settings = make_settings(
        auth={"rate_limit_per_ip": 100, "rate_limit_per_account": 2},
        server={"trusted_proxy_count": 1},
    )
    client = await aiohttp_client(create_app(settings, notifier=RecordingNotifier()))
    statuses = []
    for attempt in range(3):
        # Different client addresses (behind one trusted proxy) do not reset the account limit.
        response = await client.post(
            "/api/v1/auth/login",
            json={"identifier": "target@example.com", "password": "nope"},
            headers={"X-Forwarded-For": f"203.0.113.{attempt}"},
        )
        statuses.append(response.status)
    assert statuses == [401, 401, 429]
