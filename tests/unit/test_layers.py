"""One direction only: handlers -> actors -> streams -> mitra. A core module never imports up."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ALLOWED = {
    "mitra": {"mitra"},
    "streams": {"mitra", "streams"},
    "actors": {"mitra", "streams", "actors"},
    "handlers": {"mitra", "streams", "actors", "handlers"},
}
FORBIDDEN_IN_CORE = {"aiohttp"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_follow_the_layers(package: str) -> None:
    layered = set(ALLOWED)
    offenders = []
    for path in sorted((ROOT / package).rglob("*.py")):
        wrong = (_imports(path) & layered) - ALLOWED[package]
        if package == "mitra":
            wrong |= _imports(path) & FORBIDDEN_IN_CORE
        if wrong:
            offenders.append(f"{path.relative_to(ROOT)} imports {sorted(wrong)}")
    assert offenders == []
