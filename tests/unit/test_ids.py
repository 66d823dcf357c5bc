"""Random ids drawn in blocks are still version 4 UUIDs, and never repeat."""

from __future__ import annotations

import threading
import uuid

from mitra.ids import new_id, new_ids


def test_block_ids_are_random_version_4_uuids_without_repeats() -> None:
    ids = new_ids(1000) + [new_id() for _ in range(1000)]
    assert all(isinstance(i, uuid.UUID) and i.version == 4 for i in ids)
    assert all(i.variant == uuid.RFC_4122 for i in ids)
    assert len(set(ids)) == len(ids)


def test_threads_draw_from_their_own_blocks() -> None:
    drawn: list[list[uuid.UUID]] = [[] for _ in range(4)]

    def draw(into: list[uuid.UUID]) -> None:
        into.extend(new_id() for _ in range(500))

    threads = [threading.Thread(target=draw, args=(bucket,)) for bucket in drawn]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [i for bucket in drawn for i in bucket]
    assert len(set(every)) == 2000
