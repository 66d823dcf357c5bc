"""Errors the actor runtime raises, built on the domain hierarchy in `mitra.errors`."""

from __future__ import annotations

import pykka

from mitra.errors import ActorTimeout, ActorUnavailable

__all__ = ["ActorStopped", "ActorTimeout", "ActorUnavailable", "RestartIntensityExceeded"]


class ActorStopped(ActorUnavailable, pykka.ActorDeadError):
    """The actor stopped (or crashed) before it handled the message; the message was not processed.

    It is both Mitra's `ActorUnavailable` (what callers catch) and pykka's `ActorDeadError`
    (what pykka's own `ActorRef.stop()` expects from a dead actor), so both worlds agree.
    `crashed` tells a pool whether retrying on a fresh activation is routine (passivation)
    or follows a failure.
    """

    def __init__(self, message: str | None = None, *, crashed: bool = False) -> None:
        super().__init__(message)
        self.crashed = crashed


class RestartIntensityExceeded(Exception):
    """A supervisor restarted its children too often and gives up (escalates)."""

    def __init__(self, supervisor: str, child: str, restarts: int, within_seconds: float) -> None:
        super().__init__(
            f"supervisor {supervisor!r}: child {child!r} needed more than {restarts} restarts "
            f"within {within_seconds:g}s; escalating"
        )
        self.supervisor = supervisor
        self.child = child
        self.restarts = restarts
        self.within_seconds = within_seconds
