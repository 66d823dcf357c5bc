"""The name → ActorRef map through which a supervisor's children find each other."""

from __future__ import annotations

import threading
from typing import Any

import pykka

from actors.errors import ActorUnavailable

__all__ = ["Directory"]


class Directory:
    """Thread-safe, read-mostly map of a supervisor's live children.

    pykka's `ActorRegistry` has no lookup by key, and a child must never `ask` its supervisor
    (the supervisor may be blocked stopping that very child): children read this map
    directly instead. Only the owning supervisor writes to it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._refs: dict[str, pykka.ActorRef[Any]] = {}

    def lookup(self, name: str) -> pykka.ActorRef[Any] | None:
        """The live child called `name`, or None while it is absent or restarting."""
        with self._lock:
            return self._refs.get(name)

    def require(self, name: str) -> pykka.ActorRef[Any]:
        """Like `lookup`, raising `ActorUnavailable` instead of returning None."""
        ref = self.lookup(name)
        if ref is None:
            raise ActorUnavailable(f"actor {name!r} is not running")
        return ref

    def names(self) -> list[str]:
        with self._lock:
            return list(self._refs)

    def snapshot(self) -> dict[str, pykka.ActorRef[Any]]:
        with self._lock:
            return dict(self._refs)

    def set(self, name: str, ref: pykka.ActorRef[Any]) -> None:
        with self._lock:
            self._refs[name] = ref

    def discard(self, name: str, urn: str | None = None) -> pykka.ActorRef[Any] | None:
        """Remove `name` (only while it is still actor `urn`, if given); return the removed ref."""
        with self._lock:
            ref = self._refs.get(name)
            if ref is None or (urn is not None and ref.actor_urn != urn):
                return None
            del self._refs[name]
            return ref
