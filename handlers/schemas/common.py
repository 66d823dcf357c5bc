"""Building blocks shared by the API's models: request bases, envelopes and pages."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mitra.models.chat import SEQ_MAX
from mitra.records import MAX_PAGE, MAX_PAGE_SIZE

DataT = TypeVar("DataT")
NUL_MESSAGE = "must not contain a NUL character (\\u0000)"


def holds_nul(value: Any) -> bool:
    """Whether a value (a string, or strings inside lists, sets and dicts) holds a NUL."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list | tuple | set | frozenset):
        return any(holds_nul(item) for item in value)
    if isinstance(value, dict):
        return any(holds_nul(key) or holds_nul(item) for key, item in value.items())
    return False


class RequestModel(BaseModel):
    """A request body, query string or socket frame: unknown fields are an error, strings are
    trimmed, and no field may hold a NUL character."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    # PostgreSQL refuses NUL in text (a 500 from deep inside a query) and SQLite cuts a LIKE
    # pattern at it (a search for "\x00" matched every row). One validator on every field of
    # every request model, so no new field can forget it. After parsing, not before: pydantic
    # allows no other kind on a union's tag (the frames' `type`), and a field that is not text
    # once parsed (a uuid, a date, an int, an email) has refused a NUL already.
    @field_validator("*", mode="after")
    @classmethod
    def _refuse_nul(cls, value: Any) -> Any:
        if holds_nul(value):
            raise ValueError(NUL_MESSAGE)
        return value


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


Seq = Annotated[int, Field(ge=0, le=SEQ_MAX)]
"""A position in a conversation, as wide as the seq columns (every integer input is bounded by
the column or the SQL it ends up in: past it, PostgreSQL answered 500)."""


class PageQuery(QueryModel):
    page: int = Field(1, ge=1, le=MAX_PAGE, description="1-based page number")
    limit: int = Field(
        20, ge=1, le=MAX_PAGE_SIZE, description=f"items per page, at most {MAX_PAGE_SIZE}"
    )


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
