"""A dropped socket leaves nothing behind: it is freed at once, not left for the collector.

`mitra serve` runs the cyclic collector rarely (`server.gc_threshold`, 50,000 allocations), so a
closed socket caught in a reference cycle (~56 objects: its request, transport, parser and
session) waited for it: 12,000 connected-then-dropped sockets grew RSS by 11 MiB before it levelled
off, against 0.7 MiB once every socket is freed by reference counting (issue 13).
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest
from aiohttp import web

from handlers.chat_hub import ClientSocket
from handlers.chat_ws import ChatSession
from handlers.keys import CHAT_HUB
from tests.support.api import Api
from tests.support.chat import staff_room
from tests.support.ws import ChatClient

SOCKETS = 20
# Ours, and aiohttp's server side of each socket (its request and transport hang from it).
KINDS = (ChatSession, ClientSocket, web.WebSocketResponse)


@pytest.fixture
def collector_off() -> Iterator[None]:
    """Only reference counting frees objects meanwhile, so a cycle waits for the check."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def left_to_the_collector() -> list[int]:
    """How many of each kind only the cyclic collector could free (kept in `gc.garbage`)."""
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        return [sum(1 for thing in gc.garbage if type(thing) is kind) for kind in KINDS]
    finally:
        gc.garbage.clear()
        gc.set_debug(0)


async def test_connected_then_dropped_sockets_are_freed_at_once(
    api: Api, collector_off: None
) -> None:
    room = await staff_room(api)
    cid = str(room.conversation_id)
    hub = api.app[CHAT_HUB]
    for n in range(SOCKETS):
        socket = await ChatClient.connect(api.client, room.members[n % 2].access_token)
        if n % 2:
            # Joined and reading: the room, presence and the pending read position too.
            await socket.join(cid)
            await socket.send({"type": "read", "conversation_id": cid, "seq": 0})
        await socket.close()
    # Closed on our side: the server's handlers end soon after, their last steps (presence,
    # the read position's store) after the hub forgot the socket.
    for _ in range(50):
        if not hub.sockets:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(1)
    assert left_to_the_collector() == [0, 0, 0]
    assert (hub.rooms, hub.sessions, hub.users) == ({}, {}, {})
