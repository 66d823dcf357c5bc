"""A socket's read positions on their way to the database: a burst of read frames is one write.

Clients send a read frame per message they display, so a scroll through a backlog would be a
transaction (and a relayed event) per message. A read position only ever moves forward and only
the highest matters, so the socket keeps the highest seq per conversation and stores it after
`chat.read_flush_seconds`; frames arriving meanwhile only raise the number. One conversation's
positions are stored one at a time, in order, and what is pending when the socket closes is
stored then.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable

Store = Callable[[uuid.UUID, int, str | None], Awaitable[None]]
# The last stores of closed sockets, held here because nothing else refers to them: the loop
# keeps only weak references to tasks.
_closing: set[asyncio.Task[None]] = set()


class PendingReads:
    """The highest read position per conversation not yet stored, and the tasks storing them.

    `store(conversation_id, seq, ref)` writes one position and answers errors itself (to the
    socket, under the `ref` of the frame that raised the position).
    """

    def __init__(self, delay_seconds: float, store: Store) -> None:
        self._delay = delay_seconds
        self._store = store
        self._highest: dict[uuid.UUID, tuple[int, str | None]] = {}
        self._storing: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._hurry = asyncio.Event()
        self._closed = False

    def note(self, conversation_id: uuid.UUID, seq: int, ref: str | None) -> None:
        """Remember `seq` for the conversation; no I/O here, so a flood costs dict updates."""
        held = self._highest.get(conversation_id)
        if held is None or seq > held[0]:
            self._highest[conversation_id] = (seq, ref)
        if conversation_id not in self._storing:
            self._storing[conversation_id] = asyncio.get_running_loop().create_task(
                self._store_after_delay(conversation_id)
            )

    async def _store_after_delay(self, conversation_id: uuid.UUID) -> None:
        try:
            while conversation_id in self._highest:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._delay):
                        await self._hurry.wait()
                seq, ref = self._highest.pop(conversation_id)
                await self._store(conversation_id, seq, ref)
        finally:
            self._storing.pop(conversation_id, None)
            self._release_if_done()

    def close(self) -> None:
        """Store every pending position now, without waiting for it: a socket's handler can be
        cancelled as its peer goes away, and the positions are stored all the same."""
        self._closed = True
        self._hurry.set()
        for task in self._storing.values():
            _closing.add(task)
            task.add_done_callback(_closing.discard)
        self._release_if_done()

    def _release_if_done(self) -> None:
        # The store is usually a method of the socket's session, which holds this object: a
        # reference cycle that would keep the whole closed socket (its request, transport and
        # buffers) until the collector's next full pass. Once closed and idle, it is let go.
        if self._closed and not self._storing:
            self._store = _stored_nowhere


async def _stored_nowhere(_: uuid.UUID, __: int, ___: str | None) -> None:
    """The store of a closed `PendingReads`: nothing is noted after close."""
