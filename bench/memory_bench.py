"""Does Mitra's memory come back? Two loads, each beside a baseline measured in the same run.

1. A typing flood: eight sockets of one conversation send `typing` frames (the per-user typing
   limit raised so every frame is relayed) for `--seconds` (300 by default). Each frame is an
   event in the in-process streams backend, whose log keeps only what its retention allows (by
   records, bytes and age per partition). The baseline is the bare aiohttp broadcast server
   (`bench/bare_ws.py`) carrying the same number of frames as `send`s. Printed: the RSS after the
   first fifth (the warm-up) and at the end, and the growth per minute after the warm-up, for
   both, and the events the retention dropped.
2. Connect and drop: waves of authenticated sockets that connect, authenticate and close. A
   per-socket leak grows RSS with every wave; an allocator's high-water mark stops growing. Printed:
   RSS after each wave, and the growth per socket over the second half of the waves beside the
   first wave's.

Run: `make bench-memory` (about 12 minutes), or `python -m bench.memory_bench --seconds 60
--waves 6` for a quick look.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench.chat_bench import Server
from bench.chat_setup import server_env, sqlite_url
from mitra.demo import DEMO_LOGINS

SOCKETS = 8
SAMPLE_EVERY = 5.0


async def _login(http: aiohttp.ClientSession, base: str, index: int) -> str:
    login = DEMO_LOGINS[index]
    body = {"identifier": login.email, "password": login.password}
    async with http.post(f"{base}/api/v1/auth/login", json=body) as answer:
        payload = await answer.json()
        if answer.status != 200:
            raise RuntimeError(f"login failed: {payload}")
        return str(payload["data"]["access_token"])


async def _conversation(http: aiohttp.ClientSession, base: str, admin: str, agent: str) -> str:
    headers = {"Authorization": f"Bearer {agent}"}
    async with http.get(f"{base}/api/v1/users/me", headers=headers) as answer:
        agent_id = (await answer.json())["data"]["id"]
    async with http.post(
        f"{base}/api/v1/conversations",
        json={"participant_ids": [agent_id], "title": "memory"},
        headers={"Authorization": f"Bearer {admin}"},
    ) as answer:
        return str((await answer.json())["data"]["id"])


async def _drain(ws: aiohttp.ClientWebSocketResponse) -> None:
    async for message in ws:
        if message.type != aiohttp.WSMsgType.TEXT:
            return


async def _flood(server: Server, tokens: list[str], room: str, frame_kind: str, *,
                 seconds: float, rate: float, samples: list[tuple[float, int]]) -> int:  # fmt: skip
    """Send `rate` frames/s in all for `seconds` from SOCKETS sockets; sample RSS meanwhile."""
    sent = 0
    async with aiohttp.ClientSession() as http:
        sockets = []
        for n in range(SOCKETS):
            ws = await http.ws_connect(server.url.replace("http", "ws") + "/ws")
            await ws.send_str(
                orjson.dumps({"type": "auth", "token": tokens[n % len(tokens)]}).decode()
            )
            await ws.send_str(orjson.dumps({"type": "join", "conversation_id": room}).decode())
            sockets.append(ws)
        readers = [asyncio.create_task(_drain(ws)) for ws in sockets]
        started = time.monotonic()
        next_sample = started
        while (now := time.monotonic()) - started < seconds:
            if now >= next_sample:
                samples.append((now - started, server.rss()))
                next_sample += SAMPLE_EVERY
            for n, ws in enumerate(sockets):
                frame: dict[str, Any] = {"type": frame_kind, "conversation_id": room}
                if frame_kind == "send":
                    frame |= {"client_msg_id": f"m{sent}-{n}", "body": "typing..."}
                await ws.send_str(orjson.dumps(frame).decode())
                sent += 1
            await asyncio.sleep(max(0.0, started + sent / rate - time.monotonic()))
        samples.append((time.monotonic() - started, server.rss()))
        for ws in sockets:
            await ws.close()
        for reader in readers:
            reader.cancel()
    return sent


def _growth(samples: list[tuple[float, int]], warm: float) -> tuple[int, int, float]:
    """RSS at the end of the warm-up, at the end, and the growth in KiB per minute between."""
    after = [(t, rss) for t, rss in samples if t >= warm] or samples[-1:]
    (t0, first), (t1, last) = after[0], after[-1]
    per_minute = (last - first) / 1024 / max(t1 - t0, 1e-9) * 60
    return first, last, per_minute


def _retention(server: Server) -> dict[str, float]:
    text = server.metrics() or ""
    found: dict[str, float] = {}
    for name in ("mitra_streams_retention_dropped_total", "mitra_streams_retention_skipped_total"):
        values = re.findall(rf"^{name}(?:{{[^}}]*}})? ([0-9.e+]+)$", text, re.M)
        found[name] = sum(float(v) for v in values)
    return found


async def typing_flood(workdir: Path, args: argparse.Namespace) -> None:
    env = {
        **server_env(sqlite_url(workdir)),
        "MITRA_SERVER_SEED_DEMO": "true",
        "MITRA_CHAT_RATE_LIMIT_TYPING": "100000000",
    }
    results = {}
    for kind in ("bare", "mitra"):
        server = Server(kind, workdir, env)
        try:
            server.wait_ready(60)
            if kind == "mitra":
                async with aiohttp.ClientSession() as http:
                    admin = await _login(http, server.url, 0)
                    agent = await _login(http, server.url, 1)
                    room = await _conversation(http, server.url, admin, agent)
                tokens, frame_kind = [admin, agent], "typing"
            else:
                tokens, frame_kind, room = ["u1", "u2"], "send", "room"
            samples: list[tuple[float, int]] = []
            sent = await _flood(server, tokens, room, frame_kind, seconds=args.seconds,
                                rate=args.rate, samples=samples)  # fmt: skip
            first, last, per_minute = _growth(samples, args.seconds / 5)
            results[kind] = (sent, first, last, per_minute)
            extra = _retention(server) if kind == "mitra" else {}
        finally:
            server.stop()
        print(
            f"{kind:>5}: {sent:,} {frame_kind} frames in {args.seconds:.0f} s; RSS after warm-up "
            f"{first / 2**20:.1f} MiB, at the end {last / 2**20:.1f} MiB, "
            f"growth {per_minute:+.0f} KiB/min"
            + "".join(f"; {k.removeprefix('mitra_streams_')} {v:,.0f}" for k, v in extra.items()),
            flush=True,
        )
    bare, mitra = results["bare"][3], results["mitra"][3]
    print(
        f"typing flood: Mitra grows {mitra:+.0f} KiB/min after warm-up, the bare server {bare:+.0f}"
    )


async def connect_and_drop(workdir: Path, args: argparse.Namespace) -> None:
    env = {**server_env(sqlite_url(workdir)), "MITRA_SERVER_SEED_DEMO": "true"}
    server = Server("mitra", workdir, env)
    try:
        server.wait_ready(60)
        async with aiohttp.ClientSession() as http:
            token = await _login(http, server.url, 0)

            async def one() -> None:
                ws = await http.ws_connect(server.url.replace("http", "ws") + "/ws")
                await ws.send_str(orjson.dumps({"type": "auth", "token": token}).decode())
                await ws.receive()
                await ws.close()

            async def wave(count: int) -> None:
                for _ in range(0, count, 50):
                    await asyncio.gather(*(one() for _ in range(50)))

            await wave(500)  # warm-up: pools, caches and the allocator's first arenas
            await asyncio.sleep(2)
            rss = [server.rss()]
            for n in range(args.waves):
                await wave(args.wave_size)
                await asyncio.sleep(2)
                rss.append(server.rss())
                print(f"after {(n + 1) * args.wave_size:,} sockets: RSS "
                      f"{(rss[-1] - rss[0]) / 1024:+,.0f} KiB", flush=True)  # fmt: skip
    finally:
        server.stop()
    half = len(rss) // 2
    first = (rss[1] - rss[0]) / args.wave_size
    late = (rss[-1] - rss[half]) / ((len(rss) - 1 - half) * args.wave_size)
    print(f"connect and drop: {first:,.0f} B per socket in the first wave, {late:,.0f} B per "
          "socket over the second half of the waves (a leak would keep the two alike)")  # fmt: skip


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=300.0, help="length of each flood")
    parser.add_argument("--rate", type=float, default=2000.0, help="frames per second in all")
    parser.add_argument("--waves", type=int, default=10, help="connect-and-drop waves")
    parser.add_argument("--wave-size", type=int, default=1500, help="sockets per wave")
    return parser.parse_args()


def main() -> None:
    args = parse()
    with tempfile.TemporaryDirectory(prefix="mitra-memory-") as tmp:
        workdir = Path(tmp)
        asyncio.run(typing_flood(workdir, args))
        (workdir / "bench.db").unlink(missing_ok=True)
        asyncio.run(connect_and_drop(workdir, args))


if __name__ == "__main__":
    main()
