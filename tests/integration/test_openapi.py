"""The OpenAPI document describes every route, validates as OpenAPI 3.1, and /docs serves the UI."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from openapi_spec_validator import validate

from handlers.openapi import served_routes


async def _document(client: TestClient[Any, Any]) -> dict[str, Any]:
    response = await client.get("/api/v1/openapi.json")
    assert response.status == 200
    document: dict[str, Any] = await response.json()
    return document


async def test_every_route_is_documented_and_the_document_is_valid(
    client: TestClient[Any, Any], app: web.Application
) -> None:
    document = await _document(client)
    validate(document)
    assert document["openapi"].startswith("3.1")
    served = {(method.lower(), path) for method, path, _ in served_routes(app)}
    described = {(method, path) for path, item in document["paths"].items() for method in item}
    assert served == described
    for path in ("/health", "/ready", "/metrics", "/api/v1/auth/login", "/api/v1/users/me"):
        assert path in document["paths"]


async def test_operations_carry_models_envelopes_security_and_parameters(
    client: TestClient[Any, Any],
) -> None:
    document = await _document(client)
    schemas = document["components"]["schemas"]
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"

    create = document["paths"]["/api/v1/policies"]["post"]
    assert create["security"] == [{"bearerAuth": []}]
    body_ref = create["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    body = schemas[body_ref.rsplit("/", 1)[-1]]
    assert {"policy_number", "premium_amount", "policy_type"} <= set(body["properties"])
    created = create["responses"]["201"]["content"]["application/json"]["schema"]["$ref"]
    envelope = schemas[created.rsplit("/", 1)[-1]]
    assert set(envelope["required"]) == {"success", "message", "data"}
    assert {"401", "403", "409", "422"} <= set(create["responses"])

    listing = document["paths"]["/api/v1/policies"]["get"]
    names = {p["name"]: p for p in listing["parameters"]}
    for name in ("status", "policy_type", "agent_id", "customer_id", "due_before", "q", "sort"):
        assert names[name]["in"] == "query"
    assert names["limit"]["schema"]["maximum"] == 100

    read = document["paths"]["/api/v1/policies/{id}"]["get"]
    (path_param,) = read["parameters"]
    assert path_param["in"] == "path"
    assert path_param["schema"]["format"] == "uuid"

    login = document["paths"]["/api/v1/auth/login"]["post"]
    assert "security" not in login


async def test_docs_serve_swagger_ui_from_the_installed_package(
    client: TestClient[Any, Any],
) -> None:
    response = await client.get("/docs")
    assert response.status == 200
    page = await response.text()
    assert "/api/v1/openapi.json" in page
    assert "/docs/swagger-ui-bundle.js" in page
    script = await client.get("/docs/swagger-ui-bundle.js")
    assert script.status == 200
    assert "SwaggerUIBundle" in await script.text()
    missing = await client.get("/docs/..%2Fsetup.cfg")
    assert missing.status == 404
