"""SIGKILL during a burst of sends, then a restart: every acknowledged message is there with the
seq its ack named, with no gap and no duplicate, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from tests.e2e.test_serve import SERVING, mitra_serve, read_until, running, serve_env
from tests.streams.conftest import eventually
from tests.support.databases import truncate_all

pytestmark = pytest.mark.slow
SENDS = 1000
KILL_AFTER_ACKS = 120


@pytest.fixture(params=["sqlite", "postgres"])
async def database_env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    if request.param == "sqlite":
        return {"MITRA_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'killed.db'}"}
    url = request.getfixturevalue("postgres_url")
    await truncate_all(url)
    return {"MITRA_DATABASE_URL": url}


async def start(tmp_path: Path, env: dict[str, str]) -> tuple[Any, str, dict[str, str]]:
    """A running server: its process context, base URL, and the demo logins it printed."""
    context = running(mitra_serve("--port", "0"), tmp_path, env)
    process = await context.__aenter__()
    banner = await read_until(process, "Try: curl")
    serving = SERVING.match(banner[0])
    assert serving is not None, banner
    logins = dict(re.findall(r"^\s+(\w+)\s+(\S+)\s+/\s+\S+$", "\n".join(banner), re.M))
    passwords = dict(re.findall(r"^\s+\w+\s+(\S+)\s+/\s+(\S+)$", "\n".join(banner), re.M))
    accounts = {role: f"{email}\n{passwords[email]}" for role, email in logins.items()}
    return (context, process), f"http://127.0.0.1:{serving.group(1)}", accounts


async def login(http: aiohttp.ClientSession, base: str, account: str) -> str:
    email, password = account.split("\n")
    async with http.post(
        f"{base}/api/v1/auth/login", json={"identifier": email, "password": password}
    ) as response:
        assert response.status == 200, await response.text()
        token: str = (await response.json())["data"]["access_token"]
        return token


async def history(http: aiohttp.ClientSession, base: str, token: str, cid: str) -> list[Any]:
    messages: list[Any] = []
    while True:
        async with http.get(
            f"{base}/api/v1/conversations/{cid}/messages",
            params={"after_seq": str(messages[-1]["seq"] if messages else 0), "limit": "200"},
            headers={"Authorization": f"Bearer {token}"},
        ) as response:
            page = (await response.json())["data"]
        messages.extend(page)
        if len(page) < 200:
            return messages


async def burst(ws: aiohttp.ClientWebSocketResponse, cid: str, ids: list[str],
                acked: dict[str, int]) -> None:  # fmt: skip
    """Send every id and collect acks until the socket dies, as the protocol asks of a client.

    Acks are read while the frames go out: one that only wrote would fall behind its own acks
    and be closed as a slow consumer (4008). A `not_stored` error is sent again with the same
    `client_msg_id`: after a restart the first resends meet their own rows from before the
    kill, and the writer rejects the rest of that batch so the actor can renumber.
    """
    resend: asyncio.Queue[str | None] = asyncio.Queue()

    async def read() -> None:
        async for message in ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            frame = orjson.loads(message.data)
            if frame["type"] == "ack":
                acked[frame["client_msg_id"]] = frame["seq"]
            elif frame["type"] == "error" and frame.get("code") == "not_stored":
                resend.put_nowait(frame["ref"])
        resend.put_nowait(None)

    async def send(client_msg_id: str) -> bool:
        frame = {"type": "send", "conversation_id": cid, "client_msg_id": client_msg_id,
                 "body": f"body of {client_msg_id}"}  # fmt: skip
        try:
            await ws.send_str(orjson.dumps(frame).decode())
        except ConnectionError:
            return False
        return True

    reader = asyncio.create_task(read())
    sending = True
    for client_msg_id in ids:
        if not (sending := await send(client_msg_id)):
            break
    while sending and (client_msg_id_again := await resend.get()) is not None:
        sending = await send(client_msg_id_again)
    await reader


async def test_nothing_acknowledged_is_lost_to_a_sigkill(
    tmp_path: Path, database_env: dict[str, str]
) -> None:
    env = serve_env(MITRA_LOGGING_LEVEL="WARNING", MITRA_CHAT_RATE_LIMIT_MESSAGES="100000",
                    **database_env)  # fmt: skip
    (context, process), base, accounts = await start(tmp_path, env)
    acked: dict[str, int] = {}
    async with aiohttp.ClientSession() as http:
        admin = await login(http, base, accounts["super_admin"])
        agent = await login(http, base, accounts["senior_agent"])
        async with http.get(
            f"{base}/api/v1/users/me", headers={"Authorization": f"Bearer {agent}"}
        ) as response:
            agent_id = (await response.json())["data"]["id"]
        async with http.post(
            f"{base}/api/v1/conversations",
            json={"participant_ids": [agent_id], "title": "burst"},
            headers={"Authorization": f"Bearer {admin}"},
        ) as response:
            cid = (await response.json())["data"]["id"]
        sockets = []
        for _ in range(4):
            ws = await http.ws_connect(base.replace("http", "ws") + "/ws")
            await ws.send_str(orjson.dumps({"type": "auth", "token": admin}).decode())
            sockets.append(ws)
        ids = [f"k{n}" for n in range(SENDS)]
        senders = [
            asyncio.create_task(burst(ws, cid, ids[n::4], acked)) for n, ws in enumerate(sockets)
        ]
        await eventually(lambda: len(acked) >= KILL_AFTER_ACKS, within=60)
        os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        await asyncio.gather(*senders)
        await context.__aexit__(None, None, None)
    assert len(acked) >= KILL_AFTER_ACKS, "the kill came before the acks"
    assert len(acked) < SENDS, "the burst was over before the kill: nothing was in flight"

    (context, process), base, accounts = await start(tmp_path, env)
    try:
        async with aiohttp.ClientSession() as http:
            admin = await login(http, base, accounts["super_admin"])
            stored = await history(http, base, admin, cid)
            seqs = [m["seq"] for m in stored]
            assert seqs == list(range(1, len(stored) + 1)), "a gap or a duplicate seq"
            by_id = {m["client_msg_id"]: m["seq"] for m in stored}
            assert len(by_id) == len(stored), "a message stored twice"
            lost = {i: seq for i, seq in acked.items() if by_id.get(i) != seq}
            assert not lost, f"acknowledged but not stored with its seq: {lost}"
            # The client resends what it never saw acked; each is stored once, after the rest.
            ws = await http.ws_connect(base.replace("http", "ws") + "/ws")
            await ws.send_str(orjson.dumps({"type": "auth", "token": admin}).decode())
            again: dict[str, int] = {}
            unacked = [i for i in ids if i not in acked]
            task = asyncio.create_task(burst(ws, cid, unacked, again))
            await eventually(lambda: len(again) >= len(unacked), within=60)
            await ws.close()
            await task
            final = await history(http, base, admin, cid)
            assert [m["seq"] for m in final] == list(range(1, SENDS + 1))
            assert sorted(m["client_msg_id"] for m in final) == sorted(ids)
    finally:
        await context.__aexit__(None, None, None)
