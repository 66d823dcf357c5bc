"""The OpenAPI 3.1 contract: `@operation(...)` records each handler's models, and
`build_document(app)` walks the app's routes to describe every one of them.

A route author writes::

    @routes.post("/api/v1/things")
    @operation("Create a thing", body=ThingRequest, response=ThingResponse, status=201)
    async def create_thing(request: web.Request) -> web.Response: ...

The same pydantic models validate the request (`parse_body`, `parse_query`) and generate the
schemas here, so the document cannot drift from what the server accepts.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from handlers.schemas.common import Envelope, ErrorEnvelope

log = logging.getLogger("mitra.openapi")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
H = TypeVar("H", bound=Handler)

SECURITY_SCHEME = "bearerAuth"
_REF_PREFIX = "#/components/schemas/"
_PATH_PARAM = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")


@dataclass(frozen=True)
class RawResponse:
    """A response that is not a JSON envelope (Prometheus text, HTML, the document itself)."""

    content_type: str
    schema: dict[str, Any]
    description: str = "OK"


@dataclass(frozen=True)
class Operation:
    """What the document says about one handler."""

    summary: str
    description: str | None = None
    tags: tuple[str, ...] = ()
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    path: type[BaseModel] | None = None
    response: Any = None
    status: int = 200
    auth: bool = True
    errors: tuple[int, ...] = ()
    raw: RawResponse | None = None
    # Other success statuses answering the same envelope (200 for an existing one, 201 new).
    also: tuple[int, ...] = ()
    body_content_type: str = "application/json"
    alternates: tuple[RawResponse, ...] = ()


_OPERATIONS: dict[Callable[..., Any], Operation] = {}


def operation(
    summary: str,
    *,
    description: str | None = None,
    tags: tuple[str, ...] = (),
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    path: type[BaseModel] | None = None,
    response: Any = None,
    status: int = 200,
    auth: bool = True,
    errors: tuple[int, ...] = (),
    raw: RawResponse | None = None,
    also: tuple[int, ...] = (),
    body_content_type: str = "application/json",
    alternates: tuple[RawResponse, ...] = (),
) -> Callable[[H], H]:
    """Attach the contract to a handler; `response` is the type of the envelope's `data`.

    `auth` adds the bearer requirement and 401; a body or query model adds 422; list the other
    failures the handler can answer with in `errors`. `body_content_type` documents a body
    that is not JSON (an upload's `multipart/form-data`); `alternates` are further content
    types of the success answer (a file instead of the JSON envelope).
    """
    spec = Operation(
        summary=summary,
        description=description,
        tags=tags,
        body=body,
        query=query,
        path=path,
        response=response,
        status=status,
        auth=auth,
        errors=errors,
        raw=raw,
        also=also,
        body_content_type=body_content_type,
        alternates=alternates,
    )

    def attach(handler: H) -> H:
        _OPERATIONS[handler] = spec
        return handler

    return attach


def operation_of(handler: Callable[..., Any]) -> Operation | None:
    return _OPERATIONS.get(handler)


@dataclass(frozen=True)
class _Route:
    method: str
    path: str
    handler: Callable[..., Any]
    spec: Operation


def served_routes(app: web.Application) -> Iterator[tuple[str, str, Callable[..., Any]]]:
    """Every (method, path, handler) the router serves.

    HEAD routes are the automatic twins of GET routes and are not listed separately.
    """
    for route in app.router.routes():
        resource = route.resource
        if route.method == "HEAD" or resource is None:
            continue
        yield route.method, resource.canonical, route.handler


def build_document(app: web.Application, *, title: str, version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route registered on `app`."""
    routes: list[_Route] = []
    for method, path, handler in served_routes(app):
        spec = operation_of(handler)
        if spec is None:
            # A test fails on this; in production a missing entry must not break the document.
            log.warning("route has no @operation: %s %s", method, path)
            continue
        routes.append(_Route(method, path, handler, spec))
    schemas = _Schemas(routes)
    paths: dict[str, dict[str, Any]] = {}
    for route in sorted(routes, key=lambda r: (r.path, r.method)):
        paths.setdefault(route.path, {})[route.method.lower()] = schemas.operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": "Every JSON answer is an envelope: `{success, message, data}` or "
            "`{success: false, message, errors: [{field, message}]}`.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": schemas.definitions,
            "securitySchemes": {
                SECURITY_SCHEME: {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }


class _Schemas:
    """Every model the routes name, generated in one pass so shared models get one definition."""

    def __init__(self, routes: list[_Route]) -> None:
        wanted: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {
            (ErrorEnvelope, "serialization"): None
        }
        for route in routes:
            for model in (route.spec.body, route.spec.query, route.spec.path):
                if model is not None:
                    wanted[(model, "validation")] = None
            if route.spec.raw is None:
                wanted[(_envelope(route.spec.response), "serialization")] = None
        self._refs, definitions = models_json_schema(
            list(wanted), ref_template=_REF_PREFIX + "{model}"
        )
        self.definitions: dict[str, Any] = definitions.get("$defs", {})

    def ref(self, model: type[BaseModel], mode: JsonSchemaMode) -> dict[str, Any]:
        return dict(self._refs[(model, mode)])

    def fields(self, model: type[BaseModel] | None) -> tuple[dict[str, Any], set[str]]:
        """The properties and required names of a query or path model."""
        if model is None:
            return {}, set()
        target = self.ref(model, "validation")["$ref"].removeprefix(_REF_PREFIX)
        body = self.definitions[target]
        return body.get("properties", {}), set(body.get("required", []))

    def operation(self, route: _Route) -> dict[str, Any]:
        spec = route.spec
        item: dict[str, Any] = {
            "operationId": _operation_id(route.handler),
            "summary": spec.summary,
            "tags": list(spec.tags or (_default_tag(route.handler),)),
        }
        if spec.description:
            item["description"] = spec.description
        parameters = self.parameters(route)
        if parameters:
            item["parameters"] = parameters
        if spec.body is not None:
            item["requestBody"] = {
                "required": True,
                "content": {spec.body_content_type: {"schema": self.ref(spec.body, "validation")}},
            }
        item["responses"] = self.responses(spec)
        if spec.auth:
            item["security"] = [{SECURITY_SCHEME: []}]
        return item

    def parameters(self, route: _Route) -> list[dict[str, Any]]:
        parameters = []
        typed, _ = self.fields(route.spec.path)
        for name in _PATH_PARAM.findall(route.path):
            parameters.append(_parameter(name, "path", True, typed.get(name, {"type": "string"})))
        props, required = self.fields(route.spec.query)
        for name, schema in props.items():
            parameters.append(_parameter(name, "query", name in required, _not_null(schema)))
        return parameters

    def responses(self, spec: Operation) -> dict[str, Any]:
        responses: dict[str, Any] = {}
        if spec.raw is not None:
            responses[str(spec.status)] = {
                "description": spec.raw.description,
                "content": {spec.raw.content_type: {"schema": spec.raw.schema}},
            }
        else:
            envelope = self.ref(_envelope(spec.response), "serialization")
            for status in (spec.status, *spec.also):
                responses[str(status)] = {
                    "description": HTTPStatus(status).phrase,
                    "content": {"application/json": {"schema": envelope}},
                }
        for alternate in spec.alternates:
            content = responses[str(spec.status)]["content"]
            content[alternate.content_type] = {"schema": alternate.schema}
        failure = {"application/json": {"schema": self.ref(ErrorEnvelope, "serialization")}}
        for status in sorted(set(_implied_errors(spec)) | set(spec.errors)):
            responses[str(status)] = {"description": HTTPStatus(status).phrase, "content": failure}
        return responses


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter is absent or a string, never JSON null: drop the model's null branch."""
    variants = schema.get("anyOf")
    if not variants or {"type": "null"} not in variants:
        return schema
    rest = [variant for variant in variants if variant != {"type": "null"}]
    cleaned = {key: value for key, value in schema.items() if key != "anyOf"}
    if cleaned.get("default", ...) is None:
        del cleaned["default"]
    if len(rest) == 1:
        return {**rest[0], **cleaned}
    return {**cleaned, "anyOf": rest}


def _parameter(name: str, where: str, required: bool, schema: dict[str, Any]) -> dict[str, Any]:
    parameter: dict[str, Any] = {"name": name, "in": where, "required": required}
    if "description" in schema:
        parameter["description"] = schema["description"]
    parameter["schema"] = schema
    return parameter


def _envelope(data: Any) -> type[BaseModel]:
    # The data type is only known at run time, so mypy cannot check the parametrisation.
    return Envelope[data]


def _implied_errors(spec: Operation) -> list[int]:
    implied = []
    if spec.auth:
        implied.append(401)
    if spec.body is not None:
        implied += [400, 413, 422]
    if spec.query is not None:
        implied.append(422)
    return implied


def _operation_id(handler: Callable[..., Any]) -> str:
    module = handler.__module__.rsplit(".", 1)[-1]
    return f"{module}.{handler.__name__}"


def _default_tag(handler: Callable[..., Any]) -> str:
    return handler.__module__.rsplit(".", 1)[-1]
