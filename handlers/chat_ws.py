"""`GET /ws`: the real-time chat socket (JSON frames; see README "Real-time chat")."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

import orjson
from aiohttp import WSCloseCode, WSMsgType, web
from pydantic import ValidationError

from actors.conversation import AUTO_CHANNEL, SendMessage
from handlers.chat_frames import ack_frame, encode
from handlers.chat_hub import CLOSE_UNAUTHENTICATED, ClientSocket
from handlers.chat_reads import PendingReads
from handlers.keys import (
    AUTH,
    CHAT_HUB,
    CHAT_LIMITS,
    CHAT_ROUTER,
    CONVERSATIONS,
    SETTINGS,
    STREAMS,
)
from handlers.openapi import RawResponse, operation
from handlers.schemas.chat import (
    CLIENT_FRAME,
    FRAME_TYPES,
    AuthFrame,
    JoinFrame,
    PingFrame,
    ReadFrame,
    SendFrame,
    TypingFrame,
)
from handlers.validation import field_errors
from mitra.auth import Principal
from mitra.db import db_purpose
from mitra.errors import MitraError, NotFound, RateLimited
from mitra.observability.context import current_context
from streams.envelope import Event
from streams.topics import CHAT_EVENTS

log = logging.getLogger("mitra.chat.ws")
routes = web.RouteTableDef()

MAX_FRAME_BYTES = 64 * 1024


@routes.get("/ws")
@operation(
    "Real-time chat WebSocket",
    description=(
        "Upgrade to a WebSocket speaking JSON frames. The first frame must be"
        ' {"type":"auth","token"} within 5 s (close 4401 otherwise); then join, send, typing,'
        " read and ping. A socket that falls behind is closed with 4008: reconnect and join with"
        " since_seq."
    ),
    tags=("chat",),
    auth=False,
    status=101,
    raw=RawResponse("text/plain", {"type": "string"}, "Switching Protocols"),
)
async def chat_socket(request: web.Request) -> web.WebSocketResponse:
    settings = request.app[SETTINGS].chat
    ws = web.WebSocketResponse(
        heartbeat=settings.heartbeat_seconds,
        compress=settings.compression,
        max_msg_size=MAX_FRAME_BYTES,
    )
    await ws.prepare(request)
    try:
        principal = await _authenticate(request, ws)
        if principal is None:
            return ws
        # The request's transport is the socket's: pre-built frames are written to it directly.
        session = ChatSession(request.app, ws, principal, request.transport)
        with db_purpose("chat.socket"):
            await session.run()
    except Exception:
        # Past the upgrade the connection speaks WebSocket: the error middleware's HTTP 500
        # would reach the client as a corrupt frame. It gets an error frame and 1011 instead.
        log.exception("unhandled error in a chat socket")
        await _close_after_crash(ws)
    finally:
        _unhook_heartbeat(request)
    return ws


def _unhook_heartbeat(request: web.Request) -> None:
    """Let go of the socket's heartbeat hook on its connection, now that the socket is done.

    aiohttp hooks the response's heartbeat reset onto the connection's protocol and never
    unhooks it (aiohttp 3.14; aio-libs/aiohttp#6325): protocol -> response -> request ->
    protocol is a reference cycle, so every closed socket (its transport, parser, buffers and
    our session) waited for the collector instead of being freed at once; with
    `server.gc_threshold` at 50,000 that was thousands of closed sockets' worth of memory.
    """
    protocol = request.protocol
    # Private, so looked up first: a later aiohttp without the hook must not fail a close.
    if protocol is not None and getattr(protocol, "_data_received_cb", None) is not None:
        protocol._data_received_cb = None


async def _close_after_crash(ws: web.WebSocketResponse) -> None:
    if ws.closed:
        return
    request_id = current_context().get("request_id")
    message = f"internal error; quote request id {request_id} when reporting this"
    frame = {"type": "error", "code": "internal_error", "message": message, "ref": None}
    # The peer may be gone already; there is no one left to tell.
    with contextlib.suppress(ConnectionError):
        await ws.send_str(orjson.dumps(frame).decode())
        await ws.close(code=WSCloseCode.INTERNAL_ERROR, message=b"internal error")


async def _authenticate(request: web.Request, ws: web.WebSocketResponse) -> Principal | None:
    """The first frame authenticates; tokens never travel in the URL."""
    timeout = request.app[SETTINGS].chat.auth_timeout_seconds
    try:
        async with asyncio.timeout(timeout):
            message = await ws.receive()
    except TimeoutError:
        await ws.close(code=CLOSE_UNAUTHENTICATED, message=b"auth frame expected")
        return None
    if message.type != WSMsgType.TEXT:
        await ws.close(code=CLOSE_UNAUTHENTICATED, message=b"auth frame expected")
        return None
    try:
        auth = AuthFrame.model_validate(orjson.loads(message.data))
        return await request.app[AUTH].authenticate(auth.token)
    except (orjson.JSONDecodeError, ValidationError, MitraError):
        await ws.close(code=CLOSE_UNAUTHENTICATED, message=b"authentication failed")
        return None


class ChatSession:
    """One authenticated socket: reads frames, answers them, and cleans up when it closes."""

    def __init__(
        self,
        app: web.Application,
        ws: web.WebSocketResponse,
        principal: Principal,
        transport: asyncio.Transport | None = None,
    ):
        self.app = app
        self.ws = ws
        self.principal = principal
        self.settings = app[SETTINGS].chat
        self.hub = app[CHAT_HUB]
        self.socket = ClientSocket(
            ws,
            principal,
            self.settings.send_queue_size,
            self.hub.metrics,
            transport=transport,
        )
        self.limits = app[CHAT_LIMITS]
        self.reads = PendingReads(self.settings.read_flush_seconds, self._store_read)
        self.tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        self.hub.add(self.socket)
        try:
            self.socket.push(encode({"type": "auth_ok", "user_id": str(self.principal.user_id)}))
            async for message in self.ws:
                if message.type == WSMsgType.TEXT:
                    await self._on_text(message.data)
                elif message.type == WSMsgType.BINARY:
                    self._error("unsupported", "frames are JSON text")
        finally:
            for task in self.tasks:
                task.cancel()
            self.reads.close()
            left = self.hub.remove(self.socket)
            await self.socket.close()
            for conversation_id in left:
                if self.principal.user_id not in self.hub.online_users(conversation_id):
                    await self._relay(
                        "presence", conversation_id, {"status": "offline"}, quietly=True
                    )

    def _error(self, code: str, message: str, ref: str | None = None) -> None:
        self.socket.push(encode({"type": "error", "code": code, "message": message, "ref": ref}))

    async def _on_text(self, text: str) -> None:
        try:
            data: Any = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            self._error("bad_json", f"not JSON: {exc}")
            return
        if not isinstance(data, dict):
            self._error("bad_frame", "a frame is a JSON object")
            return
        ref = data.get("ref") if isinstance(data.get("ref"), str) else None
        kind = data.get("type")
        if kind not in FRAME_TYPES:
            self._error("unknown_type", f"unknown frame type {kind!r}", ref)
            return
        try:
            parsed = CLIENT_FRAME.validate_python(data)
        except ValidationError as exc:
            first = field_errors(exc)[0]
            # The union's tag leads every location ("send.body"); the client named the field.
            field = (first.field or kind).removeprefix(f"{kind}.")
            self._error("invalid_frame", f"{field}: {first.message}", ref)
            return
        if isinstance(parsed, PingFrame):
            self.socket.push(encode({"type": "pong", "ref": parsed.ref}))
        elif isinstance(parsed, AuthFrame):
            self._error("already_authenticated", "this socket is authenticated", ref)
        elif isinstance(parsed, SendFrame):
            self._on_send(parsed)
        elif isinstance(parsed, JoinFrame):
            await self._guard(self._join(parsed), parsed.ref)
        elif isinstance(parsed, TypingFrame):
            await self._guard(self._typing(parsed), parsed.ref)
        elif isinstance(parsed, ReadFrame):
            self.reads.note(parsed.conversation_id, parsed.seq, parsed.ref)

    async def _guard(self, work: Any, ref: str | None) -> None:
        try:
            await work
        except NotFound:
            self._error("not_member", "no such conversation, or you are not a member", ref)
        except RateLimited as exc:
            self._rate_limited(exc, ref)
        except MitraError as exc:
            self._error(exc.code, exc.message, ref)

    def _rate_limited(self, exc: RateLimited, ref: str | None) -> None:
        self._error("rate_limited", f"slow down; retry in {exc.retry_after_seconds}s", ref)

    # ---- frames ------------------------------------------------------------------------------

    def _on_send(self, send: SendFrame) -> None:
        ref = send.ref or send.client_msg_id
        if len(send.body) > self.settings.max_body_chars:
            self._error("body_too_long", f"at most {self.settings.max_body_chars} characters", ref)
            return
        try:
            self.limits.send(self.principal.user_id)
        except RateLimited as exc:
            self._rate_limited(exc, ref)
            return
        # Tasks start in creation order, so one socket's sends reach the actor in order while
        # several acks are awaited at once.
        task = asyncio.get_running_loop().create_task(self._send(send, ref))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _send(self, send: SendFrame, ref: str) -> None:
        direction = "outbound" if self.principal.role.is_staff else "inbound"
        message = SendMessage(
            self.principal.user_id,
            send.client_msg_id,
            send.body,
            send.channel or AUTO_CHANNEL,
            direction,
        )
        try:
            stored = await self.app[CHAT_ROUTER].send(
                self.principal.tenant_id, send.conversation_id, message
            )
        except NotFound:
            self._error("not_member", "no such conversation, or you are not a member", ref)
            return
        except MitraError as exc:
            self._error(exc.code, exc.message, ref)
            return
        except Exception:
            # A task's error would otherwise vanish: the client would wait for an ack forever.
            log.exception("a send failed unexpectedly")
            self._error(
                "internal_error",
                "the message may not be stored; send it again with the same client_msg_id",
                ref,
            )
            return
        self.hub.metrics.messages_in += 1
        self.socket.push(ack_frame(stored))

    async def _join(self, join: JoinFrame) -> None:
        # In the room first (live messages wait in the socket's buffer), then read how far the
        # conversation goes: whatever commits in between is either buffered or counted in it.
        self.hub.join(self.socket, join.conversation_id)
        try:
            last_seq = await self.app[CONVERSATIONS].last_seq_for_member(
                self.principal, join.conversation_id
            )
        except BaseException:
            self.hub.leave(self.socket, join.conversation_id)
            raise
        # A since_seq past the end would drop every live message as already seen.
        since = min(join.since_seq, last_seq)
        online = sorted(str(user) for user in self.hub.online_users(join.conversation_id))
        await self.socket.push_waiting(
            encode(
                {
                    "type": "joined",
                    "conversation_id": str(join.conversation_id),
                    "last_seq": last_seq,
                    "since_seq": since,
                    "online": online,
                    "ref": join.ref,
                }
            )
        )
        await self.hub.recover(self.socket, join.conversation_id, since, last_seq)
        await self._relay("presence", join.conversation_id, {"status": "online"})

    async def _typing(self, typing: TypingFrame) -> None:
        self._require_joined(typing.conversation_id)
        self.limits.typing(self.principal.user_id)
        await self._relay("typing", typing.conversation_id, {})

    async def _store_read(self, conversation_id: uuid.UUID, seq: int, ref: str | None) -> None:
        """The highest position of a burst of read frames (see `PendingReads`), stored and
        relayed once; membership is checked here, in the same transaction."""
        with db_purpose("chat.read"):
            try:
                await self._guard(self._read(conversation_id, seq), ref)
            except Exception:
                # Stored from a task of its own: an error here would otherwise go unseen.
                log.exception("storing a read position failed")
                self._error("internal_error", "the read position was not stored", ref)

    async def _read(self, conversation_id: uuid.UUID, seq: int) -> None:
        position = await self.app[CONVERSATIONS].mark_read(self.principal, conversation_id, seq)
        await self._relay("read", conversation_id, {"seq": position})

    def _require_joined(self, conversation_id: uuid.UUID) -> None:
        if conversation_id not in self.socket.delivered:
            raise NotFound("join the conversation first")

    async def _relay(
        self, kind: str, conversation_id: uuid.UUID, extra: dict[str, Any], quietly: bool = False
    ) -> None:
        """Typing, read and presence reach the other members on every instance."""
        payload = {
            "conversation_id": str(conversation_id),
            "user_id": str(self.principal.user_id),
            "socket_id": str(self.socket.id),
            **extra,
        }
        event = Event(
            type=kind,
            tenant_id=str(self.principal.tenant_id),
            key=str(conversation_id),
            payload=payload,
        )
        try:
            await self.app[STREAMS].publish(CHAT_EVENTS.name, str(conversation_id), event)
        except MitraError:
            if not quietly:
                raise
            log.info("could not relay %s for %s", kind, conversation_id)
