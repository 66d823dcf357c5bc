"""`/api/v1/openapi.json` (the contract) and `/docs` (Swagger UI from the installed package)."""

from __future__ import annotations

from pathlib import Path

import swagger_ui_bundle
from aiohttp import web

from handlers.envelope import json_body
from handlers.keys import OPENAPI_DOCUMENT
from handlers.openapi import RawResponse, build_document, operation
from mitra import __version__
from mitra.errors import NotFound

routes = web.RouteTableDef()
TAGS = ("docs",)
OPENAPI_PATH = "/api/v1/openapi.json"
# The UI is served from the wheel's files: nothing outside this server is fetched.
SWAGGER_DIR = Path(str(swagger_ui_bundle.swagger_ui_path))
ASSETS = {
    "swagger-ui.css": "text/css",
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui-standalone-preset.js": "text/javascript",
    "favicon-32x32.png": "image/png",
    "favicon-16x16.png": "image/png",
}
PAGE = f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Mitra API</title>
  <link rel="stylesheet" href="/docs/swagger-ui.css">
  <link rel="icon" type="image/png" href="/docs/favicon-32x32.png" sizes="32x32">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/swagger-ui-bundle.js"></script>
  <script src="/docs/swagger-ui-standalone-preset.js"></script>
  <script>
    window.ui = SwaggerUIBundle({{
      url: "{OPENAPI_PATH}",
      dom_id: "#swagger-ui",
      presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
      layout: "StandaloneLayout",
      persistAuthorization: true
    }});
  </script>
</body>
</html>
"""


async def build_on_startup(app: web.Application) -> None:
    """Build the document once: the router is frozen by now, so it cannot change afterwards."""
    document = build_document(app, title="Mitra API", version=__version__)
    app[OPENAPI_DOCUMENT] = json_body(document)


@routes.get(OPENAPI_PATH)
@operation(
    "This OpenAPI 3.1 document",
    tags=TAGS,
    auth=False,
    raw=RawResponse("application/json", {"type": "object"}, "the OpenAPI document"),
)
async def openapi_json(request: web.Request) -> web.Response:
    return web.Response(body=request.app[OPENAPI_DOCUMENT], content_type="application/json")


@routes.get("/docs")
@operation(
    "Swagger UI for this API",
    tags=TAGS,
    auth=False,
    raw=RawResponse("text/html", {"type": "string"}, "the Swagger UI page"),
)
async def docs_page(request: web.Request) -> web.Response:
    return web.Response(text=PAGE, content_type="text/html")


@routes.get("/docs/{asset}")
@operation(
    "A Swagger UI asset",
    tags=TAGS,
    auth=False,
    errors=(404,),
    raw=RawResponse("application/octet-stream", {"type": "string"}, "a script, style or icon"),
)
async def docs_asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["asset"]
    # A fixed list, never a path from the request: nothing else on disk can be asked for.
    if name not in ASSETS:
        raise NotFound("no such asset")
    return web.FileResponse(
        SWAGGER_DIR / name,
        headers={"Content-Type": ASSETS[name], "Cache-Control": "public, max-age=86400"},
    )
