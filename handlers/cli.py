"""Entry point of the `mitra` console script: the core's CLI with `serve` plugged in."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from aiohttp import web

from handlers.app import create_app
from handlers.keys import ACCOUNTS, CUSTOMERS, DATABASE, POLICIES
from handlers.listen import ListenError, bind_sockets, url_host
from handlers.process import configure_process, freeze_after_startup
from mitra import cli
from mitra.demo import DEMO_SLUG, ensure_demo_tenant, login_banner
from mitra.demo_book import seed_book
from mitra.observability import configure_logging
from mitra.settings import Settings


def serve(settings: Settings, args: argparse.Namespace) -> int:
    host = args.host or settings.server.host
    port = args.port if args.port is not None else settings.server.port
    configure_logging(settings.logging.level, settings.log_format)
    try:
        sockets = bind_sockets(host, port)
    except ListenError as exc:
        print(f"mitra: {exc}", file=sys.stderr)
        return 2
    app = create_app(settings)
    # The bound port, not the asked one: `--port 0` prints the port the kernel picked.
    base_url = f"http://{url_host(host)}:{sockets[0].getsockname()[1]}"

    banner = [f"Mitra is serving on {base_url}"]

    async def seed_demo(app: web.Application) -> None:
        if settings.server.seed_demo:
            await ensure_demo_tenant(app[DATABASE], app[ACCOUNTS])
            if settings.demo.seed_book:
                # Idempotent: a tenant that has customers already is left as it is.
                await seed_book(app[DATABASE], app[CUSTOMERS], app[POLICIES], DEMO_SLUG)
            banner[0] = login_banner(base_url)

    def announce(_: str) -> None:
        # run_app calls this once every site listens: a client reading the banner can connect.
        print(banner[0], flush=True)

    app.on_startup.append(seed_demo)
    # Last of start-up, so everything it made is frozen.
    app.on_startup.append(freeze_after_startup(settings.server))
    configure_process(settings.server)
    web.run_app(
        app,
        sock=sockets,
        print=announce,
        access_log=None,
        shutdown_timeout=settings.server.shutdown_timeout_seconds,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return cli.main(argv, serve=serve)


if __name__ == "__main__":
    sys.exit(main())
