"""Building blocks shared by the API's models: request bases, envelopes and pages."""

from __future__ import annotations

import uuid
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

DataT = TypeVar("DataT")


class RequestModel(BaseModel):
    """A request body: unknown fields are an error, strings are trimmed."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class QueryModel(RequestModel):
    """A query string: the same rules as a body; values arrive as strings and are coerced."""


class ResponseModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


def _absent() -> Any:
    return None


def omittable(**constraints: Any) -> Any:
    """A PATCH field that may be left out but, when given, may not be null.

    A default factory (rather than `default=None`) keeps the documented schema honest: the
    field is optional and not nullable, and no `"default": null` contradicts the type.
    """
    return Field(default_factory=_absent, **constraints)


class PageQuery(QueryModel):
    page: int = Field(1, ge=1, description="1-based page number")
    limit: int = Field(20, ge=1, le=100, description="items per page, at most 100")


class Pagination(BaseModel):
    page: int
    limit: int
    total: int
    pages: int


class PageOf(BaseModel, Generic[DataT]):
    """One page of a listing."""

    items: list[DataT]
    pagination: Pagination


class Envelope(BaseModel, Generic[DataT]):
    """The success envelope every JSON endpoint answers with."""

    success: Literal[True]
    message: str
    data: DataT


class ErrorItem(BaseModel):
    field: str | None
    message: str


class ErrorEnvelope(BaseModel):
    """The failure envelope: what went wrong, field by field."""

    success: Literal[False]
    message: str
    errors: list[ErrorItem]


class IdPath(BaseModel):
    """A record's id in the path; a malformed one names no record, so it is 404."""

    id: uuid.UUID


class HealthResponse(BaseModel):
    status: Literal["alive"]


class CheckResult(BaseModel):
    ok: bool
    detail: str | None = None


class ReadyResponse(BaseModel):
    status: Literal["ready"]
    checks: dict[str, CheckResult]
