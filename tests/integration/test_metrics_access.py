"""`/metrics` answers only to its bearer token or to an allow-listed peer, when configured."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from handlers.app import create_app
from tests.conftest import SettingsFactory
from tests.support.notifier import RecordingNotifier

TOKEN = "metrics-token-for-the-tests-0123456789"

Client = TestClient[Any, Any]


async def _client(
    aiohttp_client: Any,
    make_settings: SettingsFactory,
    server: dict[str, Any] | None = None,
    **metrics: Any,
) -> Client:
    settings = make_settings(metrics=metrics, server=server or {})
    app = create_app(settings, notifier=RecordingNotifier())
    client: Client = await aiohttp_client(app)
    return client


async def _get(client: Client, headers: dict[str, str] | None = None) -> tuple[int, str]:
    response = await client.get("/metrics", headers=headers or {})
    return response.status, await response.text()


async def test_development_default_is_open(aiohttp_client: Any, make_settings: Any) -> None:
    client = await _client(aiohttp_client, make_settings)
    status, text = await _get(client)
    assert status == 200
    assert "mitra_" in text


async def test_a_token_is_needed_once_one_is_set(aiohttp_client: Any, make_settings: Any) -> None:
    client = await _client(aiohttp_client, make_settings, token=TOKEN)
    for headers in (
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": f"Bearer {TOKEN}x"},
    ):
        response = await client.get("/metrics", headers=headers)
        assert response.status == 401, headers
        assert response.headers["WWW-Authenticate"] == "Bearer"
        body = await response.json()
        assert body["success"] is False
        assert "mitra_" not in await response.text()
    status, text = await _get(client, {"Authorization": f"Bearer {TOKEN}"})
    assert status == 200
    assert "mitra_" in text


async def test_an_allowed_network_needs_no_token(aiohttp_client: Any, make_settings: Any) -> None:
    client = await _client(aiohttp_client, make_settings, allowed_networks=["127.0.0.0/8"])
    status, text = await _get(client)
    assert status == 200
    assert "mitra_" in text


async def test_outside_the_networks_is_403(aiohttp_client: Any, make_settings: Any) -> None:
    client = await _client(
        aiohttp_client, make_settings, {"trusted_proxy_count": 1}, allowed_networks=["10.0.0.0/8"]
    )
    # X-Forwarded-For is the client's own writing: it never opens the metrics.
    for headers in ({}, {"X-Forwarded-For": "10.1.2.3"}):
        response = await client.get("/metrics", headers=headers)
        assert response.status == 403, headers
        assert (await response.json())["success"] is False


async def test_token_or_network_either_will_do(aiohttp_client: Any, make_settings: Any) -> None:
    inside = await _client(
        aiohttp_client, make_settings, token=TOKEN, allowed_networks=["127.0.0.1"]
    )
    assert (await _get(inside))[0] == 200
    outside = await _client(
        aiohttp_client, make_settings, token=TOKEN, allowed_networks=["192.0.2.0/24"]
    )
    assert (await _get(outside))[0] == 401
    assert (await _get(outside, {"Authorization": f"Bearer {TOKEN}"}))[0] == 200


async def test_the_token_is_never_logged(
    aiohttp_client: Any, make_settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = await _client(aiohttp_client, make_settings, token=TOKEN)
    await _get(client, {"Authorization": f"Bearer {TOKEN}"})
    await _get(client, {"Authorization": "Bearer a-wrong-guess-of-the-token"})
    assert caplog.records, "the requests were logged"
    assert TOKEN not in caplog.text
    assert "a-wrong-guess-of-the-token" not in caplog.text
    assert TOKEN not in repr(make_settings(metrics={"token": TOKEN}))


async def test_the_openapi_document_states_the_rule(
    aiohttp_client: Any, make_settings: Any
) -> None:
    client = await _client(aiohttp_client, make_settings, token=TOKEN)
    response = await client.get("/api/v1/openapi.json")
    operation = (await response.json())["paths"]["/metrics"]["get"]
    assert {"401", "403"} <= set(operation["responses"])
    assert "metrics.token" in operation["description"]
