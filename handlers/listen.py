"""The listening sockets of `mitra serve`, bound before start-up so a busy port fails fast."""

from __future__ import annotations

import errno
import socket


class ListenError(Exception):
    """The address cannot be served; the message is one line for the operator."""


def bind_sockets(host: str, port: int) -> list[socket.socket]:
    """One bound (not yet listening) socket per address `host` resolves to, as run_app binds.

    Binding here, before the app starts, means a busy port costs no migration, no demo seeding
    and no actor system, and the error is ours to word. The sockets listen once aiohttp starts
    its sites, so nothing connects before the app is ready.
    """
    sockets: list[socket.socket] = []
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        for family, kind, proto, _, address in dict.fromkeys(addresses):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            # What asyncio's create_server sets on POSIX: restarts do not wait out TIME_WAIT,
            # and an IPv6 socket does not also claim the IPv4 port of its sibling.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            # With port 0 every address gets the port the first one was given, so the banner's
            # one URL is true for all of them.
            sock.bind((address[0], port, *address[2:]))
            port = sock.getsockname()[1]
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise ListenError(_describe(host, port, exc)) from None
    return sockets


def _describe(host: str, port: int, exc: OSError) -> str:
    reason = (exc.strerror or str(exc)).lower()
    hint = ""
    if exc.errno == errno.EADDRINUSE:
        hint = " (another process is listening there; pick a port with --port, or make run PORT=)"
    return f"cannot listen on {host}:{port}: {reason}{hint}"


def url_host(host: str) -> str:
    """`host` as it appears in a URL: IPv6 literals in brackets."""
    return f"[{host}]" if ":" in host else host
