"""Request bodies and query strings into typed models, with errors that name the field."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from mitra.errors import FieldError, InvalidInput, MalformedRequest, PayloadTooLarge

ModelT = TypeVar("ModelT", bound=BaseModel)


async def parse_body(request: web.Request, model: type[ModelT]) -> ModelT:
    """Read the JSON body (within the size limit) and validate it against `model`."""
    if request.content_length is not None and request.content_length > request.client_max_size:
        raise PayloadTooLarge(f"request body exceeds {request.client_max_size} bytes")
    if request.content_type != "application/json":
        raise MalformedRequest(
            "expected Content-Type: application/json",
            errors=[FieldError(None, f"got {request.content_type or 'no content type'}")],
        )
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(f"request body exceeds {request.client_max_size} bytes") from None
    try:
        data = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError as exc:
        raise MalformedRequest(
            "malformed JSON", errors=[FieldError(None, f"malformed JSON: {exc}")]
        ) from None
    if not isinstance(data, dict):
        raise MalformedRequest(
            "expected a JSON object", errors=[FieldError(None, "body must be a JSON object")]
        )
    return validate(model, data)


def parse_query(request: web.Request, model: type[ModelT]) -> ModelT:
    return validate(model, dict(request.query))


def validate(model: type[ModelT], data: Mapping[str, Any]) -> ModelT:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput("invalid input", errors=field_errors(exc)) from None


def field_errors(exc: ValidationError) -> list[FieldError]:
    errors = []
    for error in exc.errors(include_url=False):
        field = ".".join(str(part) for part in error["loc"]) or None
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown field"
        errors.append(FieldError(field, message.removeprefix("Value error, ")))
    return errors
