"""Mitra: the messaging backend of an insurance-agent platform."""

__version__ = "0.1.0"
