"""One hierarchy of domain errors, turned into HTTP envelopes and WebSocket frames at the edges."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    """What is wrong with one field of the input; `field` is a dotted path or None for the whole."""

    field: str | None
    message: str


class MitraError(Exception):
    """Base of every error the domain raises on purpose; `code` is stable for clients."""

    status = 500
    code = "internal_error"
    default_message = "internal error"

    def __init__(
        self,
        message: str | None = None,
        *,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, object] | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.errors = errors or []
        self.headers = headers or {}
        # Extra top-level members of the error envelope, such as `locked_until`.
        self.extra = extra or {}
        super().__init__(self.message)


class InvalidInput(MitraError):
    status = 422
    code = "invalid_input"
    default_message = "invalid input"

    @classmethod
    def for_field(cls, field: str | None, message: str) -> InvalidInput:
        return cls(message, errors=[FieldError(field, message)])


class MalformedRequest(MitraError):
    status = 400
    code = "malformed_request"
    default_message = "malformed request"


class Unauthorized(MitraError):
    status = 401
    code = "unauthorized"
    default_message = "authentication required"


class Forbidden(MitraError):
    status = 403
    code = "forbidden"
    default_message = "not allowed"


class NotFound(MitraError):
    status = 404
    code = "not_found"
    default_message = "not found"


class Conflict(MitraError):
    status = 409
    code = "conflict"
    default_message = "conflict"


class PayloadTooLarge(MitraError):
    status = 413
    code = "payload_too_large"
    default_message = "request body too large"


class UnsupportedMediaType(MitraError):
    status = 415
    code = "unsupported_media_type"
    default_message = "unsupported media type"


class Locked(MitraError):
    status = 423
    code = "locked"
    default_message = "account locked"


class RateLimited(MitraError):
    status = 429
    code = "rate_limited"
    default_message = "too many requests"

    def __init__(self, retry_after_seconds: int, message: str | None = None) -> None:
        self.retry_after_seconds = max(1, int(retry_after_seconds))
        super().__init__(message, headers={"Retry-After": str(self.retry_after_seconds)})


class Unavailable(MitraError):
    status = 503
    code = "unavailable"
    default_message = "service unavailable"


class Overloaded(Unavailable):
    """Work this instance bounds (password hashing) is at its limit; retrying soon may pass."""

    code = "overloaded"
    default_message = "too busy; retry shortly"

    def __init__(self, message: str | None = None, *, retry_after_seconds: int = 1) -> None:
        super().__init__(message, headers={"Retry-After": str(max(1, retry_after_seconds))})


class ActorTimeout(Unavailable):
    code = "actor_timeout"
    default_message = "the actor did not answer in time"


class ActorUnavailable(Unavailable):
    code = "actor_unavailable"
    default_message = "the actor stopped before it answered"
