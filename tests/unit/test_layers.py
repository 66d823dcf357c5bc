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
# A provider client speaks HTTP through the shared aiohttp client session handed to it: the core
# may hold such adapters (ARCHITECTURE: one module per provider), named here one by one so that
# a domain service never starts importing aiohttp, and none of them may import aiohttp.web.
PROVIDER_CLIENTS = {"mitra/whatsapp/graph.py", "mitra/notifications/sms.py"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _imports_aiohttp_web(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            if any(alias.name.startswith("aiohttp.web") for alias in node.names):
                return True
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith("aiohttp.web"):
                return True
            if node.module == "aiohttp" and any(alias.name == "web" for alias in node.names):
                return True
    return False


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_follow_the_layers(package: str) -> None:
    layered = set(ALLOWED)
    offenders = []
    for path in sorted((ROOT / package).rglob("*.py")):
        wrong = (_imports(path) & layered) - ALLOWED[package]
        if package == "mitra":
            relative = path.relative_to(ROOT).as_posix()
            if relative not in PROVIDER_CLIENTS:
                wrong |= _imports(path) & FORBIDDEN_IN_CORE
            elif _imports_aiohttp_web(path):
                wrong.add("aiohttp.web")
        if wrong:
            offenders.append(f"{path.relative_to(ROOT)} imports {sorted(wrong)}")
    assert offenders == []
