"""The ceiling for the chat benchmark: a bare aiohttp WebSocket broadcast server.

It speaks the frames of Mitra's `GET /ws` (auth, join, send -> ack + message to every joined
socket of the room, ping -> pong) with the same fan-out, but nothing else: the token is taken as
the user id, rooms and sequence numbers live in dicts, nothing is persisted, no actor is asked.
Whatever Mitra does beyond this is what the benchmark's ratio prices.

Run: `python -m bench.bare_ws --port P`; it prints one line `ready <port>` once it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import WSMsgType, web

AUTH_TIMEOUT_SECONDS = 5.0


class Rooms:
    def __init__(self) -> None:
        self.members: defaultdict[str, set[web.WebSocketResponse]] = defaultdict(set)
        self.last_seq: defaultdict[str, int] = defaultdict(int)


def _dumps(frame: dict[str, Any]) -> str:
    return orjson.dumps(frame).decode()


async def chat(request: web.Request) -> web.WebSocketResponse:
    rooms: Rooms = request.app["rooms"]
    # No compression: the benchmark client never offers it, and Mitra is measured the same way.
    ws = web.WebSocketResponse(compress=False)
    await ws.prepare(request)
    try:
        first = await ws.receive(timeout=AUTH_TIMEOUT_SECONDS)
    except TimeoutError:
        await ws.close()
        return ws
    if first.type is not WSMsgType.TEXT or orjson.loads(first.data).get("type") != "auth":
        await ws.close()
        return ws
    user_id = str(orjson.loads(first.data).get("token"))
    await ws.send_str(_dumps({"type": "auth_ok", "user_id": user_id}))
    joined: set[str] = set()
    try:
        async for msg in ws:
            if msg.type is not WSMsgType.TEXT:
                continue
            frame = orjson.loads(msg.data)
            kind = frame.get("type")
            if kind == "send":
                await _send(rooms, ws, user_id, frame, joined)
            elif kind == "join":
                cid = str(frame["conversation_id"])
                rooms.members[cid].add(ws)
                joined.add(cid)
                await ws.send_str(
                    _dumps(
                        {"type": "joined", "conversation_id": cid, "last_seq": rooms.last_seq[cid]}
                    )
                )
            elif kind == "ping":
                await ws.send_str('{"type":"pong"}')
    finally:
        for cid in joined:
            rooms.members[cid].discard(ws)
    return ws


async def _send(
    rooms: Rooms, ws: web.WebSocketResponse, user_id: str, frame: dict[str, Any], joined: set[str]
) -> None:
    cid = str(frame["conversation_id"])
    if cid not in joined:
        await ws.send_str(
            _dumps(
                {"type": "error", "code": "not_joined", "message": "join first", "ref": cid},
            )
        )
        return
    rooms.last_seq[cid] += 1
    seq = rooms.last_seq[cid]
    message_id = str(uuid.uuid4())
    client_msg_id = frame.get("client_msg_id")
    await ws.send_str(
        _dumps(
            {
                "type": "ack",
                "client_msg_id": client_msg_id,
                "seq": seq,
                "message_id": message_id,
                "conversation_id": cid,
            }
        )
    )
    # Encoded once, sent to every member: the cheapest fan-out there is.
    data = _dumps(
        {
            "type": "message",
            "conversation_id": cid,
            "seq": seq,
            "message_id": message_id,
            "sender_id": user_id,
            "body": frame.get("body"),
            "sent_at": datetime.now(UTC).isoformat(),
            "channel": "app",
            "client_msg_id": client_msg_id,
        }
    )
    for member in list(rooms.members[cid]):
        if not member.closed:
            await member.send_str(data)


def build_app() -> web.Application:
    app = web.Application()
    app["rooms"] = Rooms()
    app.router.add_get("/ws", chat)
    return app


def raise_open_files_limit() -> int:
    """Lift the soft RLIMIT_NOFILE to the hard limit: one descriptor per socket, thousands."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else 1_048_576
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


async def serve(host: str, port: int) -> None:
    runner = web.AppRunner(build_app(), access_log=None)
    await runner.setup()
    # The backlog of web.run_app, which `mitra serve` uses: both servers meet the same connect
    # storm with the same listen queue (the client opens sockets in batches for that reason).
    site = web.TCPSite(runner, host, port, backlog=128)
    await site.start()
    print(f"ready {port}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    raise_open_files_limit()
    with contextlib.suppress(KeyboardInterrupt):  # SIGINT is how the benchmark stops it
        asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
