"""Request id, tenant, user and actor carried in context variables into every log line."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

_context: ContextVar[dict[str, Any] | None] = ContextVar("mitra_log_context", default=None)


def current_context() -> dict[str, Any]:
    return _context.get() or {}


@contextmanager
def bind_context(**fields: Any) -> Iterator[None]:
    """Add fields to every log line written inside the block (and the tasks it starts)."""
    token = _context.set({**current_context(), **fields})
    try:
        yield
    finally:
        _context.reset(token)


def update_context(**fields: Any) -> None:
    """Add fields for the rest of the current context, e.g. the user once authenticated."""
    current = _context.get()
    if current is None:
        _context.set(dict(fields))
    else:
        current.update(fields)
