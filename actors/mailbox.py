"""A closable actor inbox that answers every ask it can no longer deliver."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pykka.messages import _ActorStop

from actors.errors import ActorStopped
from actors.future import BridgeFuture

if TYPE_CHECKING:
    from pykka._envelope import Envelope

__all__ = ["Mailbox", "Termination"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Termination:
    """How an actor's life ended: `cause` is the exception that killed it, None for a stop."""

    urn: str
    kind: str
    cause: BaseException | None

    @property
    def failed(self) -> bool:
        return self.cause is not None


class Mailbox:
    """The inbox of a `BridgedActor`, plus the handles a watcher needs.

    pykka checks `is_alive()` and then puts the envelope, without a lock; its teardown drains
    the inbox once. An ask that slips in between the two (the actor dies while a caller is
    mid-`ask`) sits in a dead queue and its future is never resolved: the caller hangs.
    Here a closed mailbox answers every later envelope at once with `ActorStopped`, and a
    put racing the close drains what it finds (see `put`).

    `terminated` resolves (on the actor's thread, after the inbox is closed) with a
    `Termination`; `thread` is the actor's thread, for joins at shutdown.
    """

    __slots__ = (
        "_closed",
        "_crashed",
        "_lock",
        "_queue",
        "_stop_marker",
        "get",
        "terminated",
        "thread",
        "urn",
    )

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Envelope[Any]] = queue.SimpleQueue()
        self._lock = threading.Lock()  # serialises draining, not putting
        self._closed = False
        self._crashed = False
        self._stop_marker: Envelope[Any] | None = None  # set by abort()
        self.terminated: BridgeFuture[Termination] = BridgeFuture()
        self.thread: threading.Thread | None = None
        self.urn = ""
        # pykka's ActorInbox.get(): the queue's own method, no extra Python frame per message.
        self.get: Callable[[], Envelope[Any]] = self._queue.get

    # ---- pykka ActorInbox protocol -----------------------------------------------------------

    def put(self, envelope: Envelope[Any], /) -> None:
        # Lock-free on the hot path. `close()` sets `_closed` *before* draining, so either this
        # check runs after the flag (and we drain ourselves) or the put landed before the
        # drain began (and the drain answers it). No envelope is stranded either way.
        if self._closed:
            _reject(envelope, self.urn, crashed=self._crashed)
            return
        self._queue.put(envelope)
        if self.closed:  # re-read (the property keeps type checkers from narrowing it away)
            self._fail_queued(crashed=self._crashed)

    def empty(self) -> bool:
        return self._queue.empty()

    # ---- lifecycle ---------------------------------------------------------------------------

    def qsize(self) -> int:
        """Messages waiting (approximate, as for any queue shared between threads)."""
        return self._queue.qsize()

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self, *, crashed: bool) -> int:
        """Refuse further messages and answer every queued ask with `ActorStopped`.

        Called by the dying actor on its own thread. Returns how many envelopes were dropped.
        """
        self._crashed = crashed
        self._closed = True  # after _crashed: a putter that sees the flag reads a settled cause
        return self._fail_queued(crashed=crashed)

    def abort(self) -> int:
        """Past a shutdown deadline: fail what is queued and stop after the current message.

        Callable from any thread. The stop envelope bypasses the closed check on purpose.
        """
        self._closed = True
        dropped = self._fail_queued(crashed=False)
        self._stop_marker = _stop_envelope()
        self._queue.put(self._stop_marker)
        return dropped

    def _fail_queued(self, *, crashed: bool) -> int:
        dropped = 0
        with self._lock:  # the owner and a racing putter may both drain; one at a time
            while True:
                try:
                    envelope = self._queue.get_nowait()
                except queue.Empty:
                    break
                if envelope is self._stop_marker:
                    continue  # put back below: the aborted actor still has to see it
                dropped += 1
                _reject(envelope, self.urn, crashed=crashed)
            if self._stop_marker is not None and not self.terminated.done():
                self._queue.put(self._stop_marker)
        return dropped


def _stop_envelope() -> Envelope[Any]:
    from pykka._envelope import Envelope

    return Envelope(_ActorStop())


def _reject(envelope: Envelope[Any], urn: str, *, crashed: bool) -> None:
    reply_to = envelope.reply_to
    if reply_to is None:
        logger.debug("dropped a tell to stopped actor %s: %r", urn, envelope.message)
        return
    try:
        if isinstance(envelope.message, _ActorStop):
            reply_to.set(None)  # "stop" on a stopping actor succeeded, as pykka answers it
        else:
            why = "crashed" if crashed else "stopped"
            exc = ActorStopped(f"actor {urn} {why} before handling the message", crashed=crashed)
            reply_to.set_exception((ActorStopped, exc, None))
    except queue.Full:
        pass  # already answered
