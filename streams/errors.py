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
