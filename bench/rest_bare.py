"""The ceiling for the REST benchmark: a bare aiohttp handler answering from memory.

It serves the exact bytes Mitra answered to `GET /api/v1/policies?limit=20` (read from a file the
benchmark wrote), with no authentication, no database and no middleware: whatever Mitra does
beyond this is what the benchmark's ratio prices.

Run: `python -m bench.rest_bare --port P --body FILE`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from aiohttp import web


def build(body: bytes) -> web.Application:
    async def policies(_request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/api/v1/policies", policies)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--body", type=Path, required=True)
    args = parser.parse_args()
    web.run_app(build(args.body.read_bytes()), host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
