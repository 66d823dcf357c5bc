"""Helpers the record handlers share: ids from the path, pages into the listing shape."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

from handlers.schemas.common import NUL_MESSAGE, Pagination
from mitra.errors import InvalidInput, NotFound
from mitra.records import Page, PageRequest

T = TypeVar("T")


def path_id(request: web.Request, what: str) -> uuid.UUID:
    text = request.match_info["id"]
    # Not merely a malformed id (404): the same refusal as in any other text input.
    if "\x00" in text:
        raise InvalidInput.for_field("id", NUL_MESSAGE)
    try:
        return uuid.UUID(text)
    except ValueError:
        raise NotFound(f"{what} not found") from None


def page_request(page: int, limit: int) -> PageRequest:
    return PageRequest(page=page, limit=limit)


def listing(page: Page[T], shape: Callable[[T], Any]) -> dict[str, Any]:
    """`{"items", "pagination": {"page", "limit", "total", "pages"}}`."""
    return {
        "items": [shape(item) for item in page.items],
        "pagination": Pagination(
            page=page.page, limit=page.limit, total=page.total, pages=page.pages
        ),
    }
