"""Random (version 4) UUIDs drawn from the OS's CSPRNG in blocks.

`uuid.uuid4()` makes one `getrandom` system call per id; the chat's hot path makes three ids per
message (the message and its two outbox events), and under load those calls were the largest
single cost of the writer. One call per block of ids keeps the same randomness source.
"""

from __future__ import annotations

import os
import threading
import uuid

_BLOCK = 64
_local = threading.local()


def new_ids(count: int) -> list[uuid.UUID]:
    """`count` fresh random UUIDs from one read of the OS's random source."""
    raw = os.urandom(16 * count)
    return [uuid.UUID(bytes=raw[i : i + 16], version=4) for i in range(0, 16 * count, 16)]


def new_id() -> uuid.UUID:
    """One fresh random UUID; each thread keeps a small block of them ready."""
    block: list[uuid.UUID] | None = getattr(_local, "block", None)
    if not block:
        block = _local.block = new_ids(_BLOCK)
    return block.pop()
