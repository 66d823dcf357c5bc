"""The load client of the chat benchmark: worker processes that hold the WebSockets.

One `ClientPool` (in the orchestrating process) starts `workers` processes; each opens its share
of the sockets over real loopback TCP, authenticates, joins, then runs the phases it is told to
(open-loop fixed rate, closed-loop saturation) and answers with counts and latency samples. The
same code drives Mitra and the bare server, so any difference is the server's.

Latency is measured by the client alone: a sender stamps `time.monotonic_ns()` into the body and
every *other* member's socket computes the delay when the `message` frame arrives. CLOCK_MONOTONIC
is one clock for the whole machine, so stamps compare across the worker processes. Against several
instances each socket knows which one it is on, and the sender writes its instance into the body
too, so a delivery at a socket of another instance (one that crossed through the streams) is
counted apart from one on the sender's own instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import aiohttp
import orjson
import psutil  # type: ignore[import-untyped]

from bench.bare_ws import raise_open_files_limit

AUTH_TIMEOUT_SECONDS = 15.0
LATENCY_TAG = "L"
SATURATION_TAG = "S"
PROBE_TAG = "P"
# A body is "<tag><monotonic ns>:<instance>|<padding>"; the padding fills it to --body-chars.
BODY_OVERHEAD = 23
TICK_SECONDS = 0.005  # open-loop sends are scheduled on this grid


@dataclass(frozen=True)
class SocketSpec:
    """One socket to open: whose token, which conversation, how many members it has."""

    token: str
    conversation_id: str
    members: int
    # In the saturation phase only some sockets send (a window each), the rest only receive.
    sat_sender: bool
    # Which of the servers' URLs this socket connects to (0 with a single server), and how many
    # of the conversation's members are on another one: a send's expected cross-instance frames.
    instance: int = 0
    remote_members: int = 0


@dataclass
class _Sock:
    spec: SocketSpec
    ws: aiohttp.ClientWebSocketResponse
    user_id: str
    window: asyncio.Semaphore | None = None
    # Set when a send fails or the reader ends: the socket is not used again, and a saturation
    # lane must not spin on it (a failing send never yields to the loop).
    dead: bool = False


@dataclass
class _Stats:
    """What one worker saw in one phase."""

    sent: int = 0
    acked: int = 0
    delivered: int = 0  # message frames received in the window, sender's own echo included
    expected_to_others: int = 0  # sum over sends of (members - 1)
    delivered_to_others: int = 0  # this phase's message frames at the other members' sockets
    expected_cross: int = 0  # sum over sends of the members on another instance than the sender
    delivered_cross: int = 0  # those frames that arrived, at sockets of another instance
    latencies_ms: list[float] = field(default_factory=list)
    cross_latencies_ms: list[float] = field(default_factory=list)  # the subset across instances
    ack_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)


class _Worker:
    def __init__(self, index: int, run: str) -> None:
        self.index = index
        self.run = run
        self.socks: list[_Sock] = []
        self.readers: list[asyncio.Task[None]] = []
        self.session: aiohttp.ClientSession | None = None
        self.counter = 0
        # client_msg_id -> (socket, send time): acks find their window and their delay here.
        self.pending: dict[str, tuple[_Sock, int]] = {}
        self.stats = _Stats()
        self.tag = ""  # the phase whose frames are counted, "" between phases
        self.window_open = False  # message frames count as delivered only inside the window
        self.last_frame_ns = 0
        self.close_codes: Counter[str] = Counter()  # why sockets ended: server codes like 4008
        self.process = psutil.Process()

    # -- connecting ----------------------------------------------------------------------------

    async def connect(self, urls: list[str], specs: list[SocketSpec], batch: int) -> dict[str, Any]:
        # No connection limit (aiohttp's default of 100 would queue the 101st socket forever);
        # WebSockets are long-lived and each one holds its connection.
        connector = aiohttp.TCPConnector(limit=0, force_close=True)
        self.session = aiohttp.ClientSession(connector=connector)
        started = time.perf_counter()
        errors: Counter[str] = Counter()
        for i in range(0, len(specs), batch):
            # Batches, so a connect storm of thousands never overflows the listen backlog.
            results = await asyncio.gather(
                *(self._open(urls[spec.instance], spec) for spec in specs[i : i + batch]),
                return_exceptions=True,
            )
            for result in results:
                if isinstance(result, BaseException):
                    errors[type(result).__name__ + ": " + str(result)[:80]] += 1
                else:
                    self.socks.append(result)
                    # Read from the moment it joined: an unread socket answers no server ping,
                    # and a server with a heartbeat closes it while the others still connect.
                    self.readers.append(asyncio.create_task(self._read(result)))
        return {
            "connected": len(self.socks),
            "failed": sum(errors.values()),
            "errors": dict(errors.most_common(5)),
            "seconds": time.perf_counter() - started,
        }

    async def _open(self, url: str, spec: SocketSpec) -> _Sock:
        assert self.session is not None
        ws = await self.session.ws_connect(url, autoping=True, heartbeat=None, compress=0)
        try:
            async with asyncio.timeout(AUTH_TIMEOUT_SECONDS):
                await ws.send_str(_dumps({"type": "auth", "token": spec.token}))
                auth = await _expect(ws, "auth_ok")
                await ws.send_str(
                    _dumps(
                        {"type": "join", "conversation_id": spec.conversation_id, "since_seq": 0}
                    )
                )
                await _expect(ws, "joined")
        except BaseException:
            await ws.close()
            raise
        return _Sock(spec=spec, ws=ws, user_id=str(auth["user_id"]))

    # -- receiving -----------------------------------------------------------------------------

    async def _read(self, sock: _Sock) -> None:
        try:
            await self._read_frames(sock)
        except Exception as exc:
            self.close_codes[type(exc).__name__] += 1
        else:
            exc_type = type(sock.ws.exception()).__name__ if sock.ws.exception() else ""
            self.close_codes[f"{sock.ws.close_code}{' ' + exc_type if exc_type else ''}"] += 1
        finally:
            sock.dead = True

    async def _read_frames(self, sock: _Sock) -> None:
        async for msg in sock.ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                continue
            now = time.monotonic_ns()
            self.last_frame_ns = now
            frame = orjson.loads(msg.data)
            kind = frame.get("type")
            if kind == "message":
                self._on_message(sock, frame, now)
            elif kind == "ack":
                self._on_ack(frame.get("client_msg_id"), now)
            elif kind == "error":
                self.stats.errors[str(frame.get("code"))] += 1
                self._on_ack(frame.get("ref"), None)

    def _on_message(self, sock: _Sock, frame: dict[str, Any], now: int) -> None:
        stats = self.stats
        if self.window_open:
            stats.delivered += 1
        body = frame.get("body")
        if not self.tag or not isinstance(body, str) or not body.startswith(self.tag):
            return
        if frame.get("sender_id") == sock.user_id:
            return  # the sender's own echo is not a delivery to another member
        stamp, _, origin = body[1 : body.index("|")].partition(":")
        delay_ms = (now - int(stamp)) / 1e6
        stats.delivered_to_others += 1
        stats.latencies_ms.append(delay_ms)
        if int(origin) != sock.spec.instance:
            stats.delivered_cross += 1
            stats.cross_latencies_ms.append(delay_ms)

    def _on_ack(self, client_msg_id: Any, now: int | None) -> None:
        entry = self.pending.pop(str(client_msg_id), None)
        if entry is None:
            return
        sock, sent_ns = entry
        if now is not None:
            self.stats.acked += 1
            self.stats.ack_ms.append((now - sent_ns) / 1e6)
        if sock.window is not None:
            sock.window.release()

    # -- sending -------------------------------------------------------------------------------

    async def _send(self, sock: _Sock, tag: str, pad: str) -> None:
        if sock.dead or sock.ws.closed:
            # The server closed it (a slow consumer gets 4008); the schedule goes on without it.
            self.stats.errors["socket_closed"] += 1
            if sock.window is not None:
                sock.window.release()
            return
        self.counter += 1
        client_msg_id = f"{self.run}-{self.index}-{self.counter}"
        now = time.monotonic_ns()
        self.pending[client_msg_id] = (sock, now)
        self.stats.sent += 1
        self.stats.expected_to_others += sock.spec.members - 1
        self.stats.expected_cross += sock.spec.remote_members
        frame = {
            "type": "send",
            "conversation_id": sock.spec.conversation_id,
            "client_msg_id": client_msg_id,
            "body": f"{tag}{now}:{sock.spec.instance}|{pad}",
        }
        try:
            await sock.ws.send_str(_dumps(frame))
        except (ConnectionError, aiohttp.ClientError, RuntimeError):
            self.stats.errors["send_failed"] += 1
            sock.dead = True
            self._on_ack(client_msg_id, None)

    async def fixed_rate(self, rate: float, seconds: float, body_chars: int) -> dict[str, Any]:
        """Open loop: sends are due on a schedule whatever the acks do (no coordinated omission)."""
        senders = list(self.socks)
        random.Random(self.index).shuffle(senders)  # noqa: S311 - spread consecutive sends over conversations
        pad = "x" * max(0, body_chars - BODY_OVERHEAD)
        return await self._phase(LATENCY_TAG, seconds, self._schedule(senders, rate, seconds, pad))

    async def _schedule(self, senders: list[_Sock], rate: float, seconds: float, pad: str) -> None:
        if not senders or rate <= 0:
            await asyncio.sleep(seconds)
            return
        started = time.monotonic()
        sent = 0
        turn = 0
        while (elapsed := time.monotonic() - started) < seconds:
            due = int(elapsed * rate) - sent
            for _ in range(due):
                await self._send(senders[turn % len(senders)], LATENCY_TAG, pad)
                turn += 1
            sent += max(due, 0)
            await asyncio.sleep(TICK_SECONDS)

    async def saturate(self, window: int, seconds: float, body_chars: int) -> dict[str, Any]:
        """Closed loop: each sending socket keeps `window` sends outstanding until time is up."""
        pad = "x" * max(0, body_chars - BODY_OVERHEAD)
        senders = [sock for sock in self.socks if sock.spec.sat_sender]
        for sock in senders:
            sock.window = asyncio.Semaphore(window)
        deadline = time.monotonic() + seconds

        async def lane(sock: _Sock) -> None:
            assert sock.window is not None
            while (left := deadline - time.monotonic()) > 0 and not sock.dead:
                try:
                    async with asyncio.timeout(left):
                        await sock.window.acquire()
                except TimeoutError:
                    return
                await self._send(sock, SATURATION_TAG, pad)

        async def lanes() -> None:
            await asyncio.gather(*(lane(sock) for sock in senders))

        return await self._phase(SATURATION_TAG, seconds, lanes())

    async def ping(self) -> dict[str, Any]:
        return {"pong": self.index}

    async def probe(self, within: float) -> dict[str, Any]:
        """One send from one socket per (conversation, instance), each awaited for its ack.

        Before a load on several instances: a send fails while `chat-owners` still rebalances,
        and one forwarded from every instance shows that each owns some conversations.
        """
        self.stats = _Stats()
        chosen: dict[tuple[str, int], _Sock] = {}
        for sock in self.socks:
            if not sock.dead:
                chosen.setdefault((sock.spec.conversation_id, sock.spec.instance), sock)
        for sock in chosen.values():
            await self._send(sock, PROBE_TAG, "")
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if not self.pending:
                break
            await asyncio.sleep(0.05)
        unacked = len(self.pending)
        self.pending.clear()
        return {
            "sent": self.stats.sent,
            "acked": self.stats.acked,
            "unacked": unacked,
            "errors": dict(self.stats.errors),
        }

    async def _phase(self, tag: str, seconds: float, load: Any) -> dict[str, Any]:
        self.stats = _Stats()
        self.tag = tag
        cpu0 = self.process.cpu_times()
        started = time.monotonic()
        self.window_open = True
        await load
        # Whatever the load took, the rate is over the time the window was open.
        window_seconds = max(time.monotonic() - started, seconds)
        self.window_open = False
        delivered_in_window = self.stats.delivered
        cpu1 = self.process.cpu_times()
        drained = await self._drain(10.0)
        stats = self.stats
        self.tag = ""
        busy = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
        return {
            "window_seconds": window_seconds,
            "sent": stats.sent,
            "acked": stats.acked,
            "unacked": len(self.pending),
            "delivered": delivered_in_window,
            "expected_to_others": stats.expected_to_others,
            "delivered_to_others": stats.delivered_to_others,
            "expected_cross": stats.expected_cross,
            "delivered_cross": stats.delivered_cross,
            "latencies_ms": stats.latencies_ms,
            "cross_latencies_ms": stats.cross_latencies_ms,
            "ack_ms": stats.ack_ms,
            "errors": dict(stats.errors),
            "cpu_seconds": busy,
            "drain_seconds": drained,
            "closed_sockets": sum(1 for sock in self.socks if sock.dead),
            "close_codes": dict(self.close_codes),
        }

    async def _drain(self, limit: float) -> float:
        """Wait for outstanding acks and in-flight frames: quiet for 0.5 s, or `limit` seconds."""
        started = time.monotonic()
        while time.monotonic() - started < limit:
            quiet = (time.monotonic_ns() - self.last_frame_ns) / 1e9
            if not self.pending and quiet > 0.5:
                break
            await asyncio.sleep(0.05)
        self.pending.clear()
        for sock in self.socks:
            sock.window = None
        return time.monotonic() - started

    async def close(self) -> None:
        await asyncio.gather(*(sock.ws.close() for sock in self.socks), return_exceptions=True)
        for task in self.readers:
            task.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)
        if self.session is not None:
            await self.session.close()


async def _expect(ws: aiohttp.ClientWebSocketResponse, kind: str) -> dict[str, Any]:
    """The next frame of type `kind`; other members' presence frames may come first."""
    while True:
        msg = await ws.receive()
        if msg.type is not aiohttp.WSMsgType.TEXT:
            raise ConnectionError(f"expected {kind}, got {msg.type.name} {msg.data} {msg.extra}")
        frame: dict[str, Any] = orjson.loads(msg.data)
        if frame.get("type") == kind:
            return frame
        if frame.get("type") == "error":
            raise ConnectionError(f"expected {kind}, got error {frame.get('code')}")


def _dumps(frame: dict[str, Any]) -> str:
    return orjson.dumps(frame).decode()


# ---- the worker process ----------------------------------------------------------------------


def _worker_main(conn: Connection, index: int, run: str) -> None:
    raise_open_files_limit()
    # Ctrl-C reaches the whole process group: the orchestrator reports it, the workers just end.
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_commands(conn, index, run))


async def _serve_commands(conn: Connection, index: int, run: str) -> None:
    worker = _Worker(index, run)
    loop = asyncio.get_running_loop()
    try:
        while True:
            # The pipe is blocking; read it off the loop so the sockets keep being served.
            command, args = await loop.run_in_executor(None, conn.recv)
            if command == "close":
                break
            handlers: dict[str, Callable[..., Awaitable[dict[str, Any]]]] = {
                "connect": worker.connect,
                "fixed_rate": worker.fixed_rate,
                "saturate": worker.saturate,
                "probe": worker.probe,
                "ping": worker.ping,
            }
            try:
                conn.send(await handlers[command](*args))
            except Exception as exc:
                # Answer with the failure, so the orchestrator reports it instead of waiting.
                conn.send({"error": f"worker {index}: {type(exc).__name__}: {exc}"})
    finally:
        with contextlib.suppress(Exception):
            await worker.close()
        conn.send({"closed": True})


# ---- the orchestrator's handle ---------------------------------------------------------------


class WorkerFailed(RuntimeError):
    """A worker process died or did not answer in time."""


class ClientPool:
    """Client worker processes driven in lock-step: every command goes to all, all answer."""

    def __init__(self, workers: int, run: str) -> None:
        context = multiprocessing.get_context("spawn")
        self._conns: list[Connection] = []
        self._procs: list[Any] = []
        for index in range(workers):
            parent, child = context.Pipe()
            proc = context.Process(target=_worker_main, args=(child, index, run), daemon=True)
            proc.start()
            self._conns.append(parent)
            self._procs.append(proc)

    @property
    def pids(self) -> list[int]:
        return [int(proc.pid) for proc in self._procs]

    def _all(self, command: str, per_worker: list[tuple[Any, ...]], timeout: float) -> list[Any]:
        for conn, args in zip(self._conns, per_worker, strict=True):
            conn.send((command, args))
        deadline = time.monotonic() + timeout
        answers = []
        for conn in self._conns:
            if not conn.poll(max(0.0, deadline - time.monotonic())):
                raise WorkerFailed(f"no answer to {command} within {timeout:.0f} s")
            answers.append(conn.recv())
        failures = [answer["error"] for answer in answers if "error" in answer]
        if failures:
            raise WorkerFailed("; ".join(failures))
        return answers

    def connect(
        self, urls: list[str], specs: list[SocketSpec], batch: int, timeout: float
    ) -> list[dict[str, Any]]:
        """Open every spec's socket on `urls[spec.instance]`, the specs dealt over the workers."""
        # Every worker has started (spawn imports take a while) before any connects, so the
        # workers' connect timings overlap and their rates add up.
        self._all("ping", [()] * len(self._conns), 60)
        shares = [specs[i :: len(self._conns)] for i in range(len(self._conns))]
        return self._all("connect", [(urls, share, batch) for share in shares], timeout)

    def probe(self, within: float) -> list[dict[str, Any]]:
        return self._all("probe", [(within,)] * len(self._conns), within + 30)

    def fixed_rate(self, rate: float, seconds: float, body_chars: int) -> list[dict[str, Any]]:
        share = rate / len(self._conns)
        return self._all(
            "fixed_rate", [(share, seconds, body_chars)] * len(self._conns), seconds + 60
        )

    def saturate(self, window: int, seconds: float, body_chars: int) -> list[dict[str, Any]]:
        return self._all(
            "saturate", [(window, seconds, body_chars)] * len(self._conns), seconds + 60
        )

    def close(self) -> None:
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.send(("close", ()))
        for conn in self._conns:
            with contextlib.suppress(OSError, EOFError):
                if conn.poll(20):
                    conn.recv()
        for proc in self._procs:
            proc.join(5)
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
