"""Per-user chat budgets, shared by every socket and REST send of one user on this instance."""

from __future__ import annotations

import uuid

from mitra.auth.ratelimit import RateLimiter
from mitra.settings import ChatSettings


class ChatLimits:
    """Sends and typing frames per user per `chat.rate_limit_window_seconds`.

    Keyed by the user, not the socket: a second socket (or the REST API) would otherwise be a
    second budget. The state is this process's memory, so each instance counts its own sockets
    and requests (the README says so); a check is one dict lookup, no database round trip.
    """

    def __init__(self, settings: ChatSettings) -> None:
        window = settings.rate_limit_window_seconds
        self._sends = RateLimiter(settings.rate_limit_messages, window)
        self._typing = RateLimiter(settings.rate_limit_typing, window)

    def send(self, user_id: uuid.UUID) -> None:
        """Count one message; raise `RateLimited` (with Retry-After) past the user's budget."""
        self._sends.hit(user_id)

    def typing(self, user_id: uuid.UUID) -> None:
        """Count one typing frame; raise `RateLimited` past the user's budget."""
        self._typing.hit(user_id)
