"""The sockets this instance holds, by conversation, and the bounded queue in front of each.

A slow socket must never delay the others: each has its own queue and writer task, and one that
falls `send_queue_size` frames behind is closed with 4008, telling its client to reconnect and
recover with `since_seq`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import defaultdict, deque
from datetime import datetime
from typing import Any

import orjson
from aiohttp import WSCloseCode, web

from handlers.chat_metrics import ChatMetrics
from mitra.auth import Principal
from streams.envelope import Event

log = logging.getLogger("mitra.chat.hub")

CLOSE_SLOW_CONSUMER = 4008
"""The client fell behind; reconnect and join with the last seq seen."""

MESSAGE_EVENT = "message.accepted"
RELAYED_EVENTS = {"typing", "read", "presence"}


def frame(payload: dict[str, Any]) -> str:
    return orjson.dumps(payload).decode()


class ClientSocket:
    """One authenticated WebSocket, its send queue and the conversations it joined."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        principal: Principal,
        queue_size: int,
        metrics: ChatMetrics,
    ) -> None:
        self.id = uuid.uuid4()
        self.ws = ws
        self.principal = principal
        self._metrics = metrics
        self._limit = queue_size
        self._pending: deque[tuple[str, float | None]] = deque()
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        # True while the writer waits for the peer to take bytes (the transport is full).
        self._stalled = False
        # Per conversation: the highest seq this socket was given.
        self.delivered: dict[uuid.UUID, int] = {}
        self._recovering: dict[uuid.UUID, list[tuple[int, str, float | None]]] = {}
        self._writer = asyncio.get_running_loop().create_task(self._write(), name="ws-writer")
        self.overflowed = False

    @property
    def user_id(self) -> uuid.UUID:
        return self.principal.user_id

    def push(self, text: str, accepted_at: float | None = None) -> bool:
        """Queue a frame. A socket whose peer has stopped taking bytes while `queue_size`
        frames wait is closed with 4008 (its client recovers by since_seq).

        A burst that arrives while the writer has simply not run yet is not the peer's fault:
        only a stalled writer (blocked on a full transport) makes a full queue an overflow.
        """
        if self.overflowed:
            return False
        if len(self._pending) >= self._limit and self._stalled:
            self.overflowed = True
            self._pending.clear()
            self._metrics.overflows.inc({})
            log.info("socket %s fell behind; closing it", self.id)
            asyncio.get_running_loop().create_task(
                self.ws.close(code=CLOSE_SLOW_CONSUMER, message=b"too slow; reconnect")
            )
            return False
        self._pending.append((text, accepted_at))
        if len(self._pending) >= self._limit:
            self._room.clear()
        self._wake.set()
        return True

    async def push_waiting(self, text: str) -> None:
        """Queue a frame once there is room: recovery pages wait for the socket."""
        await self._room.wait()
        self.push(text)

    def begin_recovery(self, conversation_id: uuid.UUID) -> None:
        self._recovering[conversation_id] = []

    def end_recovery(self, conversation_id: uuid.UUID, last_seq: int) -> None:
        """Recovery sent everything up to `last_seq`; now release what arrived meanwhile."""
        self.delivered[conversation_id] = last_seq
        for seq, text, accepted_at in self._recovering.pop(conversation_id, []):
            self.offer(conversation_id, seq, text, accepted_at)

    def offer(
        self, conversation_id: uuid.UUID, seq: int, text: str, accepted_at: float | None
    ) -> None:
        """A live message: buffered while recovering, dropped if already given, else queued."""
        buffer = self._recovering.get(conversation_id)
        if buffer is not None:
            buffer.append((seq, text, accepted_at))
            return
        if seq <= self.delivered.get(conversation_id, 0):
            return
        self.delivered[conversation_id] = seq
        self.push(text, accepted_at)

    async def _write(self) -> None:
        while True:
            await self._wake.wait()
            while self._pending:
                text, accepted_at = self._pending.popleft()
                if len(self._pending) < self._limit:
                    self._room.set()
                self._stalled = True
                try:
                    await self.ws.send_str(text)
                except (ConnectionResetError, RuntimeError):
                    return  # closed under us; the reader side cleans up
                finally:
                    self._stalled = False
                if accepted_at is not None:
                    self._metrics.messages_out.inc({})
                    self._metrics.fanout.observe({}, max(0.0, time.time() - accepted_at))
            self._wake.clear()

    async def close(self) -> None:
        self._writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer


class SocketHub:
    """Rooms of sockets by conversation; fans each `chat.events` event out to its room."""

    def __init__(self, metrics: ChatMetrics) -> None:
        self.metrics = metrics
        self.rooms: dict[uuid.UUID, set[ClientSocket]] = defaultdict(set)
        self.sockets: set[ClientSocket] = set()

    def add(self, socket: ClientSocket) -> None:
        self.sockets.add(socket)
        self.metrics.opened()

    def remove(self, socket: ClientSocket) -> list[uuid.UUID]:
        """Forget the socket; returns the conversations it had joined."""
        if socket not in self.sockets:
            return []
        self.sockets.discard(socket)
        self.metrics.closed()
        left = list(socket.delivered) + list(socket._recovering)
        for conversation_id in left:
            room = self.rooms.get(conversation_id)
            if room is not None:
                room.discard(socket)
                if not room:
                    del self.rooms[conversation_id]
        return left

    def join(self, socket: ClientSocket, conversation_id: uuid.UUID) -> None:
        socket.begin_recovery(conversation_id)
        self.rooms[conversation_id].add(socket)

    def online_users(self, conversation_id: uuid.UUID) -> set[uuid.UUID]:
        return {socket.user_id for socket in self.rooms.get(conversation_id, ())}

    def deliver(self, event: Event) -> None:
        """A `chat.events` listener."""
        payload = event.payload
        conversation_id = uuid.UUID(payload["conversation_id"])
        room = self.rooms.get(conversation_id)
        if not room:
            return
        if event.type == MESSAGE_EVENT:
            text = frame({"type": "message", **payload})
            accepted_at = datetime.fromisoformat(payload["sent_at"]).timestamp()
            seq = int(payload["seq"])
            for socket in list(room):
                socket.offer(conversation_id, seq, text, accepted_at)
        elif event.type in RELAYED_EVENTS:
            origin = payload.get("socket_id")
            text = frame(
                {"type": event.type, **{k: v for k, v in payload.items() if k != "socket_id"}}
            )
            for socket in list(room):
                # Relayed to the others: not back to the socket it came from.
                if str(socket.id) != origin:
                    socket.push(text)

    async def close_all(self) -> None:
        for socket in list(self.sockets):
            await socket.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")
