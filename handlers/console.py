"""The agent console: `/` sends a browser to `/console/`, which serves the built page and assets.

The page is read once at start-up. Its assets carry a content hash in their names, so they are
cached for a year and never revalidated; the page itself is revalidated every time, so a new
build reaches browsers at once.
"""

from __future__ import annotations

import asyncio
import mimetypes

from aiohttp import web

from handlers.keys import CONSOLE_BUILD
from handlers.openapi import RawResponse, operation
from mitra.console import load_build
from mitra.errors import NotFound

routes = web.RouteTableDef()
TAGS = ("console",)
# Scripts, styles and sockets from this origin only; no inline script, no framing. Inline style
# attributes are not allowed either: the console sets styles through the CSSOM.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
ASSET_HEADERS = {
    "Cache-Control": "public, max-age=31536000, immutable",
    "X-Content-Type-Options": "nosniff",
}
NOT_BUILT = (
    "The console has not been built: run `make install` (it needs Node.js and npm), "
    "then restart the server.\n"
)


async def load_on_startup(app: web.Application) -> None:
    # On a thread: the loop does no file I/O of its own, not even at start-up.
    app[CONSOLE_BUILD] = await asyncio.to_thread(load_build)


@routes.get("/")
@operation(
    "Send a browser to the agent console",
    tags=TAGS,
    auth=False,
    status=302,
    raw=RawResponse("text/plain", {"type": "string"}, "a redirect to /console/"),
)
async def root(request: web.Request) -> web.Response:
    return web.Response(status=302, text="see /console/\n", headers={"Location": "/console/"})


@routes.get("/console/")
@operation(
    "The agent console's page",
    tags=TAGS,
    auth=False,
    errors=(503,),
    raw=RawResponse("text/html", {"type": "string"}, "the console's HTML page"),
)
async def page(request: web.Request) -> web.Response:
    build = request.app[CONSOLE_BUILD]
    if build is None:
        return web.Response(status=503, text=NOT_BUILT)
    return web.Response(body=build.index, content_type="text/html", headers=PAGE_HEADERS)


@routes.get("/console/assets/{name}")
@operation(
    "A built script or stylesheet of the console (content-hashed name)",
    tags=TAGS,
    auth=False,
    errors=(404,),
    raw=RawResponse("application/octet-stream", {"type": "string"}, "a script or stylesheet"),
)
async def asset(request: web.Request) -> web.StreamResponse:
    build = request.app[CONSOLE_BUILD]
    # Only the names the build's manifest lists: nothing else on disk can be asked for.
    path = build.assets.get(request.match_info["name"]) if build is not None else None
    if path is None:
        raise NotFound("no such asset")
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return web.FileResponse(path, headers={**ASSET_HEADERS, "Content-Type": content_type})
