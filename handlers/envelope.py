"""The JSON envelope every endpoint answers with, serialised by orjson."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson
from aiohttp import web
from pydantic import BaseModel

from mitra.errors import FieldError

JSON_CONTENT_TYPE = "application/json"


def _default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    raise TypeError


def utc_json(value: datetime | None) -> str | None:
    """A UTC timestamp as pydantic writes it in JSON ("...T10:20:30.123456Z"), for answers built
    without a model."""
    if value is None:
        return None
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def json_body(payload: Any) -> bytes:
    return orjson.dumps(payload, default=_default, option=orjson.OPT_NON_STR_KEYS)


def ok(
    data: Any = None,
    *,
    message: str = "ok",
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """`{"success": true, "message", "data"}`."""
    if isinstance(data, BaseModel):
        data = data.model_dump(mode="json")
    body = {"success": True, "message": message, "data": data}
    return web.Response(
        body=json_body(body), status=status, content_type=JSON_CONTENT_TYPE, headers=headers
    )


def failure(
    status: int,
    message: str,
    errors: list[FieldError] | None = None,
    *,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> web.Response:
    """`{"success": false, "message", "errors": [{"field", "message"}]}`."""
    body: dict[str, Any] = {
        "success": False,
        "message": message,
        "errors": [{"field": e.field, "message": e.message} for e in errors or []],
    }
    if extra:
        body.update(extra)
    return web.Response(
        body=json_body(body), status=status, content_type=JSON_CONTENT_TYPE, headers=headers
    )
