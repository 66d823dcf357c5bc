"""A WebSocket chat client for tests: a reader task keeps every frame; waits time out."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson
from aiohttp.test_utils import TestClient

WAIT = 5.0


class ChatClient:
    """One socket of one user. Frames are claimed by `expect`, so concurrent waits are fine."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.frames: list[dict[str, Any]] = []
        self._claimed: set[int] = set()
        self._arrived = asyncio.Condition()
        self.closed: aiohttp.WSMessage | None = None
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def connect(cls, client: TestClient[Any, Any], token: str | None) -> ChatClient:
        chat = cls(await client.ws_connect("/ws"))
        if token is not None:
            await chat.send({"type": "auth", "token": token})
            ok = await chat.expect("auth_ok")
            assert ok["user_id"]
        return chat

    async def _read(self) -> None:
        while True:
            message = await self.ws.receive()
            async with self._arrived:
                if message.type == aiohttp.WSMsgType.TEXT:
                    self.frames.append(orjson.loads(message.data))
                else:
                    self.closed = message
                self._arrived.notify_all()
            if message.type != aiohttp.WSMsgType.TEXT:
                return

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send_str(orjson.dumps(frame).decode())

    async def expect(
        self,
        kind: str,
        where: Callable[[dict[str, Any]], bool] = lambda _: True,
        within: float = WAIT,
    ) -> dict[str, Any]:
        """The first unclaimed frame of `kind` matching `where` (waiting for it)."""
        async with asyncio.timeout(within), self._arrived:
            while True:
                for index, frame in enumerate(self.frames):
                    if index not in self._claimed and frame["type"] == kind and where(frame):
                        self._claimed.add(index)
                        return frame
                if self.closed is not None:
                    raise AssertionError(f"socket closed ({self.closed.data}) before a {kind}")
                await self._arrived.wait()

    async def wait_closed(self, within: float = WAIT) -> aiohttp.WSMessage:
        async with asyncio.timeout(within), self._arrived:
            while self.closed is None:
                await self._arrived.wait()
            return self.closed

    async def join(self, conversation_id: str, since_seq: int = 0) -> dict[str, Any]:
        await self.send(
            {"type": "join", "conversation_id": conversation_id, "since_seq": since_seq}
        )
        return await self.expect("joined", lambda f: f["conversation_id"] == conversation_id)

    async def say(
        self, conversation_id: str, client_msg_id: str, body: str = "hi"
    ) -> dict[str, Any]:
        await self.send(
            {
                "type": "send",
                "conversation_id": conversation_id,
                "client_msg_id": client_msg_id,
                "body": body,
            }
        )
        return await self.expect("ack", lambda f: f["client_msg_id"] == client_msg_id)

    async def messages(self, count: int, within: float = WAIT) -> list[dict[str, Any]]:
        return [await self.expect("message", within=within) for _ in range(count)]

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


async def stalled_socket(
    host: str, port: int, frames: list[dict[str, Any]]
) -> asyncio.StreamWriter:
    """A WebSocket client that sends `frames` and then never reads, with a tiny receive
    buffer set before connecting, so the server feels it after kilobytes, not megabytes."""
    import base64
    import os
    import socket
    import struct

    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.setblocking(False)
    await asyncio.get_running_loop().sock_connect(raw, (host, port))
    reader, writer = await asyncio.open_connection(sock=raw)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    await reader.readuntil(b"\r\n\r\n")
    for frame in frames:
        payload = orjson.dumps(frame)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        length = len(payload)
        header = bytes([0x81]) + (
            bytes([0x80 | length])
            if length < 126
            else bytes([0x80 | 126]) + struct.pack("!H", length)
        )
        writer.write(header + mask + masked)
    await writer.drain()
    return writer
