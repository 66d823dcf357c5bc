"""End-to-end fixtures: the tansu broker is shared with the streams suite."""

from tests.streams.conftest import tansu_broker

__all__ = ["tansu_broker"]
