"""Logging set-up: one JSON object per line in production, readable text on a laptop."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from mitra.observability.context import current_context
from mitra.observability.tracebacks import format_exception

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "fields",
    "message",
    "asctime",  # set by Formatter.format itself, already in the text line
}


class _SafeTracebacks(logging.Formatter):
    """Tracebacks without the data errors quote (see `tracebacks`)."""

    def formatException(self, ei: Any) -> str:
        if ei[1] is None:
            return super().formatException(ei)
        try:
            return format_exception(ei)
        except Exception:
            # Never the raw traceback instead: the data it could hold is why this class exists.
            return f"{type(ei[1]).__qualname__} (traceback withheld: it could not be redacted)"


class JsonFormatter(_SafeTracebacks):
    """Formats a record with its context (request id, tenant, user, actor) and `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update(current_context())
        entry.update(_extra_fields(record))
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(_SafeTracebacks):
    def format(self, record: logging.LogRecord) -> str:
        # logging.Formatter reuses a traceback another handler's formatter left on the record,
        # which would be the unredacted one: format it afresh, and leave the record as it was.
        cached, record.exc_text = record.exc_text, None
        try:
            base = super().format(record)
        finally:
            record.exc_text = cached
        fields = {**current_context(), **_extra_fields(record)}
        if not fields:
            return base
        return base + " " + " ".join(f"{key}={value}" for key, value in fields.items())


def _extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = dict(getattr(record, "fields", None) or {})
    attributes = record.__dict__
    # A set difference (in C) rather than a loop over the record's ~20 standard attributes:
    # this runs for every log line, one per request at least.
    extra = attributes.keys() - _RESERVED
    if extra:
        for key in sorted(extra):
            if not key.startswith("_"):
                fields.setdefault(key, attributes[key])
    return fields


def configure_logging(level: str, fmt: Literal["json", "text"]) -> None:
    # Neither format writes the caller's file and line, the thread or the process, and every
    # request logs a line: skip collecting them (a third of a log call's cost). `_srcfile = None`
    # is the knob the logging module's own comments name for turning caller lookup off.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiohttp's own access log would duplicate our one line per request.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
