"""The sockets this instance holds, by conversation, and the bounded queue in front of each.

Messages reach a socket by two paths: straight from this instance's writer once their batch
commits (`deliver_committed`), and through `chat.events` from every instance (`deliver`). A
socket keeps the highest seq it was given per conversation, so whichever path comes second is
dropped; a seq that skips ahead (a conversation that moved here from another instance, whose
last messages are still on their way) is filled from the database before it is given, so a
socket never gets a seq twice, out of order, or with a hole.

A slow socket must never delay the others: a frame is written straight to a socket's transport
while it takes bytes, and queued behind its own writer task once it does not; a socket that
falls `send_queue_size` frames behind that way is closed with 4008, telling its client to
reconnect and recover with `since_seq`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Collection, Iterable
from datetime import datetime
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from handlers.chat_frames import Frame, encode, message_frame
from handlers.chat_metrics import ChatMetrics
from mitra.auth import Principal
from mitra.chat import StoredMessage
from streams.envelope import Event

log = logging.getLogger("mitra.chat.hub")

CLOSE_SLOW_CONSUMER = 4008
"""The client fell behind; reconnect and join with the last seq seen."""

MESSAGE_EVENT = "message.accepted"
USER_FRAME_EVENT = "user.frame"
"""A frame for every socket of some users (import progress, escalations), not a conversation's."""
# `status`: how far a WhatsApp message got (sent, delivered, read, failed), from Meta.
RELAYED_EVENTS = {"typing", "read", "presence", "status"}
# Past this many bytes waiting in a transport, frames queue behind the socket's writer task,
# which waits for the peer (aiohttp's own flow control) instead of growing the buffer.
TRANSPORT_HIGH_WATER = 64 * 1024

FetchSince = Callable[[uuid.UUID, uuid.UUID, int, int], Awaitable[list[StoredMessage]]]
"""(tenant_id, conversation_id, since_seq, limit) -> the stored messages after since_seq."""

LiveSessions = Callable[[Collection[uuid.UUID]], Awaitable[frozenset[uuid.UUID]]]
"""Which of these session ids are still live (`AuthService.live_sessions`)."""

CLOSE_UNAUTHENTICATED = 4401
"""No valid session: the auth frame failed, or the session was revoked (logout, password
change, refresh-token reuse) while the socket was open. Sign in again."""


class ClientSocket:
    """One authenticated WebSocket, its send queue and the conversations it joined."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        principal: Principal,
        queue_size: int,
        metrics: ChatMetrics,
        transport: asyncio.Transport | None = None,
    ) -> None:
        self.id = uuid.uuid4()
        self.ws = ws
        self.principal = principal
        self._metrics = metrics
        self._limit = queue_size
        # Written to directly only when frames go out as they are (no per-socket compression).
        self._transport = transport if not ws.compress else None
        self._pending: deque[Frame] = deque()
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        # True while the writer task has a frame in hand (it may be waiting for the peer).
        self._busy = False
        # Per conversation: the highest seq this socket was given.
        self.delivered: dict[uuid.UUID, int] = {}
        self._recovering: dict[uuid.UUID, list[tuple[int, Frame]]] = {}
        self._writer = asyncio.get_running_loop().create_task(self._write(), name="ws-writer")
        self.overflowed = False

    @property
    def user_id(self) -> uuid.UUID:
        return self.principal.user_id

    def push(self, frame: Frame) -> bool:
        """Send a frame: at once while the transport takes bytes, else behind the queue.

        A socket whose peer has stopped taking bytes while `queue_size` frames wait is closed
        with 4008 (its client recovers by since_seq). A burst that arrives while the writer
        has simply not run yet is not the peer's fault: only a writer stuck on a full
        transport makes a full queue an overflow.
        """
        if self.overflowed:
            return False
        transport = self._transport
        if (
            transport is not None
            and not self._pending
            and not self._busy
            and transport.get_write_buffer_size() < TRANSPORT_HIGH_WATER
        ):
            if transport.is_closing():
                return False
            transport.write(frame.wire)
            self._written(frame)
            return True
        if len(self._pending) >= self._limit and self._busy:
            self._overflow()
            return False
        self._pending.append(frame)
        if len(self._pending) >= self._limit:
            self._room.clear()
        self._wake.set()
        return True

    async def push_waiting(self, frame: Frame) -> None:
        """Queue a frame once there is room: recovery pages wait for the socket."""
        await self._room.wait()
        self.push(frame)

    def _overflow(self) -> None:
        self.overflowed = True
        self._pending.clear()
        self._metrics.overflows += 1
        log.info("socket %s fell behind; closing it", self.id)
        asyncio.get_running_loop().create_task(
            self.ws.close(code=CLOSE_SLOW_CONSUMER, message=b"too slow; reconnect")
        )

    def _written(self, frame: Frame) -> None:
        if frame.accepted_at is not None:
            self._metrics.messages_out += 1
            self._metrics.fanout.observe(max(0.0, time.time() - frame.accepted_at))

    def conversations(self) -> list[uuid.UUID]:
        """Every conversation this socket joined (recovering or live)."""
        return [*self.delivered, *self._recovering]

    def recovering(self, conversation_id: uuid.UUID) -> bool:
        return conversation_id in self._recovering

    def begin_recovery(self, conversation_id: uuid.UUID) -> None:
        self._recovering.setdefault(conversation_id, [])

    def end_recovery(self, conversation_id: uuid.UUID, last_seq: int) -> None:
        """Recovery sent everything stored up to `last_seq`; now release what arrived meanwhile.

        What is still ahead of `last_seq` was not in the database when it was read, so it is
        given in seq order as it is, gap or not: the database is the truth at this point.
        """
        self.delivered[conversation_id] = max(last_seq, self.delivered.get(conversation_id, 0))
        for seq, frame in sorted(self._recovering.pop(conversation_id, []), key=_seq_of):
            if seq > self.delivered[conversation_id]:
                self.delivered[conversation_id] = seq
                self.push(frame)

    def forget(self, conversation_id: uuid.UUID) -> None:
        self._recovering.pop(conversation_id, None)
        self.delivered.pop(conversation_id, None)

    def needs(self, conversation_id: uuid.UUID, seq: int) -> bool:
        """Whether `offer` would do anything with this seq (saves encoding a duplicate)."""
        if conversation_id in self._recovering:
            return True
        delivered = self.delivered.get(conversation_id)
        return delivered is not None and seq > delivered

    def offer(self, conversation_id: uuid.UUID, seq: int, frame: Frame) -> bool:
        """A live message: buffered while recovering, dropped if already given, else sent.

        Returns True when the seq skips ahead of what this socket was given: the socket has
        then started recovering the conversation (the message waits in its buffer), and the
        caller fills the gap from the database.
        """
        buffer = self._recovering.get(conversation_id)
        if buffer is not None:
            buffer.append((seq, frame))
            return False
        delivered = self.delivered.get(conversation_id)
        if delivered is None or seq <= delivered:
            return False
        if seq > delivered + 1:
            self._recovering[conversation_id] = [(seq, frame)]
            return True
        self.delivered[conversation_id] = seq
        self.push(frame)
        return False

    async def _write(self) -> None:
        while True:
            await self._wake.wait()
            while self._pending:
                frame = self._pending.popleft()
                if len(self._pending) < self._limit:
                    self._room.set()
                self._busy = True
                try:
                    await self.ws.send_frame(frame.payload, WSMsgType.TEXT)
                except (ConnectionResetError, RuntimeError):
                    return  # closed under us; the reader side cleans up
                finally:
                    self._busy = False
                self._written(frame)
            self._wake.clear()

    async def close(self) -> None:
        self._writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer


async def _end_session(socket: ClientSocket) -> None:
    await socket.ws.close(code=CLOSE_UNAUTHENTICATED, message=b"session ended; sign in again")


def _seq_of(item: tuple[int, Frame]) -> int:
    return item[0]


class SocketHub:
    """Rooms of sockets by conversation; delivers committed messages and relayed events."""

    def __init__(
        self, metrics: ChatMetrics, fetch_since: FetchSince, *, recovery_page_size: int = 500
    ) -> None:
        self.metrics = metrics
        self._fetch_since = fetch_since
        self._page_size = recovery_page_size
        self.rooms: dict[uuid.UUID, set[ClientSocket]] = defaultdict(set)
        # Per room: the highest seq this instance's writer gave its sockets on commit. The same
        # message coming back through `chat.events` is then dropped before anything is decoded
        # or asked of each socket (one lookup instead of one per member).
        self._given_on_commit: dict[uuid.UUID, int] = {}
        self.sockets: set[ClientSocket] = set()
        self.sessions: dict[uuid.UUID, set[ClientSocket]] = {}
        self.users: dict[uuid.UUID, set[ClientSocket]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def add(self, socket: ClientSocket) -> None:
        self.sockets.add(socket)
        self.sessions.setdefault(socket.principal.session_id, set()).add(socket)
        self.users.setdefault(socket.user_id, set()).add(socket)
        self.metrics.opened()

    def remove(self, socket: ClientSocket) -> list[uuid.UUID]:
        """Forget the socket; returns the conversations it had joined."""
        if socket not in self.sockets:
            return []
        self.sockets.discard(socket)
        same_session = self.sessions.get(socket.principal.session_id)
        if same_session is not None:
            same_session.discard(socket)
            if not same_session:
                del self.sessions[socket.principal.session_id]
        same_user = self.users.get(socket.user_id)
        if same_user is not None:
            same_user.discard(socket)
            if not same_user:
                del self.users[socket.user_id]
        self.metrics.closed()
        left = socket.conversations()
        for conversation_id in left:
            room = self.rooms.get(conversation_id)
            if room is not None:
                room.discard(socket)
                if not room:
                    self._close_room(conversation_id)
        return left

    def join(self, socket: ClientSocket, conversation_id: uuid.UUID) -> None:
        socket.begin_recovery(conversation_id)
        self.rooms[conversation_id].add(socket)

    def leave(self, socket: ClientSocket, conversation_id: uuid.UUID) -> None:
        """Undo a join that was refused (not a member): out of the room, its buffer dropped."""
        socket.forget(conversation_id)
        room = self.rooms.get(conversation_id)
        if room is not None:
            room.discard(socket)
            if not room:
                self._close_room(conversation_id)

    def _close_room(self, conversation_id: uuid.UUID) -> None:
        del self.rooms[conversation_id]
        self._given_on_commit.pop(conversation_id, None)

    def online_users(self, conversation_id: uuid.UUID) -> set[uuid.UUID]:
        return {socket.user_id for socket in self.rooms.get(conversation_id, ())}

    async def recover(
        self,
        socket: ClientSocket,
        conversation_id: uuid.UUID,
        since: int,
        stored_until: int | None = None,
    ) -> None:
        """Send the socket every stored message after `since`, page by page, then release what
        arrived live meanwhile (the socket is recovering the conversation until then).

        `stored_until`: the last seq known stored since the socket started recovering; when
        `since` has reached it there is nothing to read (a reconnect that missed nothing).
        """
        last = since
        tenant_id = socket.principal.tenant_id
        try:
            while stored_until is None or last < stored_until:
                page = await self._fetch_since(tenant_id, conversation_id, last, self._page_size)
                for stored in page:
                    await socket.push_waiting(message_frame(stored))
                    last = stored.seq
                if len(page) < self._page_size:
                    break
        finally:
            socket.end_recovery(conversation_id, last)

    def deliver_committed(self, messages: Iterable[StoredMessage]) -> None:
        """The writer's on-commit listener: this instance's sockets get the messages at once."""
        rooms = self.rooms
        given = self._given_on_commit
        for stored in messages:
            room = rooms.get(stored.conversation_id)
            if room:
                self._offer(room, stored.conversation_id, stored.seq, message_frame(stored))
                # Seqs commit in order per conversation: the last one given covers the rest.
                given[stored.conversation_id] = stored.seq

    def deliver(self, event: Event) -> None:
        """A `chat.events` listener: messages committed anywhere, and relayed events."""
        payload = event.payload
        if event.type == USER_FRAME_EVENT:
            self.deliver_to_users(event.tenant_id, payload["user_ids"], payload["frame"])
            return
        conversation_id = uuid.UUID(payload["conversation_id"])
        room = self.rooms.get(conversation_id)
        if not room:
            return
        if event.type == MESSAGE_EVENT:
            seq = int(payload["seq"])
            # Given on commit here to every socket then in the room (buffered by those still
            # recovering); a socket that joined since read it from the database.
            if seq <= self._given_on_commit.get(conversation_id, 0):
                return
            if any(socket.needs(conversation_id, seq) for socket in room):
                accepted_at = datetime.fromisoformat(payload["sent_at"]).timestamp()
                frame = encode({"type": "message", **payload}, accepted_at)
                self._offer(room, conversation_id, seq, frame)
        elif event.type in RELAYED_EVENTS:
            origin = payload.get("socket_id")
            frame = encode(
                {"type": event.type, **{k: v for k, v in payload.items() if k != "socket_id"}}
            )
            for socket in list(room):
                # Relayed to the others: not back to the socket it came from.
                if str(socket.id) != origin:
                    socket.push(frame)

    def deliver_to_users(
        self, tenant_id: str, user_ids: Iterable[str], frame: dict[str, Any]
    ) -> None:
        """Every socket of these users on this instance gets the frame (once per socket)."""
        encoded: Frame | None = None
        for user_id in user_ids:
            for socket in list(self.users.get(uuid.UUID(user_id), ())):
                # A user id is unique across tenants; the check is a second lock on the door.
                if str(socket.principal.tenant_id) != tenant_id:
                    continue
                encoded = encoded or encode(frame)
                socket.push(encoded)

    def _offer(
        self, room: set[ClientSocket], conversation_id: uuid.UUID, seq: int, frame: Frame
    ) -> None:
        for socket in list(room):
            if socket.offer(conversation_id, seq, frame):
                self._fill_gap(socket, conversation_id)

    def _fill_gap(self, socket: ClientSocket, conversation_id: uuid.UUID) -> None:
        since = socket.delivered.get(conversation_id, 0)
        log.info(
            "socket %s: conversation %s skipped past seq %d; filling from the database",
            socket.id,
            conversation_id,
            since,
        )
        task = asyncio.get_running_loop().create_task(
            self.recover(socket, conversation_id, since), name="ws-fill-gap"
        )
        self._tasks.add(task)
        task.add_done_callback(self._filled)

    def _filled(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("filling a gap failed: %r", task.exception())

    def close_sessions(self, session_ids: Iterable[uuid.UUID]) -> None:
        """Close every socket of these (revoked) sessions with 4401."""
        closing = [
            socket for session_id in session_ids for socket in self.sessions.get(session_id, ())
        ]
        for socket in closing:
            task = asyncio.get_running_loop().create_task(_end_session(socket))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if closing:
            log.info("closing %d socket(s) of revoked sessions", len(closing))

    async def watch_sessions(self, live_sessions: LiveSessions, every: float) -> None:
        """Re-check the sessions of open sockets every `every` seconds and close the ones that
        ended: a revocation whose event was lost on its way still closes them in time."""
        while True:
            await asyncio.sleep(every)
            open_now = set(self.sessions)
            if not open_now:
                continue
            try:
                live = await live_sessions(open_now)
            except Exception:
                log.warning("could not re-check the sessions of open sockets", exc_info=True)
                continue
            self.close_sessions(open_now - live)

    async def close_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for socket in list(self.sockets):
            await socket.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")
