"""The console's files as the app serves them: the redirect, the page's CSP and caching, the
hashed assets, and what first load costs a browser."""

from __future__ import annotations

import gzip
import re
from typing import Any

from aiohttp.test_utils import TestClient

from mitra.console import DIST, load_build
from tests.support.databases import in_ci

# The budget for the whole console on first load, compressed.
FIRST_LOAD_BUDGET = 300 * 1024


def _built() -> bool:
    if load_build() is not None:
        return True
    assert not in_ci(), "the console is not built: `make install` builds it"
    return False


async def test_root_redirects_and_the_page_is_served_with_a_csp(
    client: TestClient[Any, Any],
) -> None:
    response = await client.get("/", allow_redirects=False)
    assert response.status == 302
    assert response.headers["Location"] == "/console/"
    if not _built():
        assert (await client.get("/console/")).status == 503
        return

    page = await client.get("/console/")
    assert page.status == 200
    assert page.content_type == "text/html"
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "unsafe" not in csp
    assert "frame-ancestors 'none'" in csp
    assert page.headers["Cache-Control"] == "no-cache"
    html = await page.text()
    names = re.findall(r'(?:src|href)="/console/assets/([^"]+)"', html)
    assert len(names) == 2, html

    for name in names:
        asset = await client.get(f"/console/assets/{name}")
        assert asset.status == 200
        assert asset.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert asset.content_type in ("text/javascript", "application/javascript", "text/css")
        assert await asset.read() == (DIST / name).read_bytes()


async def test_only_the_builds_assets_are_served(client: TestClient[Any, Any]) -> None:
    for name in ("manifest.json", "index.html", "..%2F__init__.py", "console.js"):
        response = await client.get(f"/console/assets/{name}")
        assert response.status == 404, name
        assert (await response.json())["success"] is False


def test_first_load_is_under_300_kb_compressed() -> None:
    build = load_build()
    if build is None:
        assert not in_ci(), "the console is not built: `make install` builds it"
        return
    files = [build.index, *(path.read_bytes() for path in build.assets.values())]
    compressed = sum(len(gzip.compress(data, compresslevel=9)) for data in files)
    print(f"console first load: {compressed} bytes gzip, {sum(map(len, files))} raw")
    assert compressed < FIRST_LOAD_BUDGET
