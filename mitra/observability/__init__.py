"""Structured logs with request context, and Prometheus metrics."""

from mitra.observability.context import bind_context, current_context
from mitra.observability.logging import JsonFormatter, configure_logging
from mitra.observability.metrics import HttpMetrics

__all__ = ["HttpMetrics", "JsonFormatter", "bind_context", "configure_logging", "current_context"]
