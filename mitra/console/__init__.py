"""Where the built agent console lives: `make install` bundles `console/` into `dist/` here."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

DIST = Path(__file__).parent / "dist"


@dataclass(frozen=True)
class ConsoleBuild:
    """The built files: the page, and the hashed assets it names (the only files served)."""

    index: bytes
    assets: dict[str, Path]


def load_build(dist: Path = DIST) -> ConsoleBuild | None:
    """The build in `dist`, or None when the console has not been built (no npm run yet)."""
    try:
        manifest = json.loads((dist / "manifest.json").read_text())
        index = (dist / "index.html").read_bytes()
    except (OSError, ValueError):
        return None
    assets = {name: dist / name for name in manifest.values() if (dist / name).is_file()}
    return ConsoleBuild(index=index, assets=assets)
