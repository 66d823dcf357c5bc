"""End-to-end fixtures: the tansu broker shared with the streams suite, and a private one."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.streams._tansu import run_tansu
from tests.streams.conftest import tansu_broker

__all__ = ["private_tansu", "tansu_broker"]


@pytest.fixture
def private_tansu(tansu_broker: str, tmp_path: Path) -> Iterator[str]:
    """A broker of this test's own: consumer groups that earlier tests' instances left (some
    SIGKILLed) cannot hold its instances' joins. `tansu_broker` first: it skips (or fails in
    CI) when tansu cannot run at all."""
    with run_tansu(tmp_path / "tansu.log") as bootstrap:
        yield bootstrap
