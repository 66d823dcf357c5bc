"""Errors raised by the streams layer, rooted in Mitra's one domain error hierarchy."""

from __future__ import annotations

from mitra.errors import MitraError, Unavailable


class StreamsError(MitraError):
    """Base of every error the streams layer raises on purpose."""

    code = "streams_error"
    default_message = "streams error"


class EnvelopeError(StreamsError):
    """Bytes from a topic are not a valid event envelope (bad JSON, missing or wrong fields)."""

    code = "invalid_envelope"
    default_message = "invalid event envelope"


class StreamsUnavailable(Unavailable):
    """The broker cannot be reached right now; the caller may retry later (maps to HTTP 503)."""

    code = "streams_unavailable"
    default_message = "the message broker is unavailable"


class BatchPublishFailed(StreamsUnavailable):
    """Some records of a `publish_batch` were not acknowledged by the broker.

    `failed` holds the indexes (into the batch) of those records; every other record was
    acknowledged. A failed record may still have reached the broker (a timeout), so publishing
    it again can duplicate it: consumers de-duplicate by event id.
    """

    def __init__(self, message: str, *, failed: frozenset[int]) -> None:
        super().__init__(message)
        self.failed = failed
