"""The log of one in-process partition (`memory://`): segments, and retention like Kafka's.

A partition's records live in segments, each a run of consecutive offsets whose values lie back
to back in one bytearray, with their ends and key numbers in two arrays. A thousand records are
a handful of objects: the event bytes each publish encoded are copied in and freed, and the
garbage collector has nothing per record to walk. Retention drops whole segments from the old
end, as Kafka does, whenever the partition holds more records or bytes than its bounds or its
oldest segment's newest record is older than the age bound. A segment is at most 1/16 of each
bound (records, bytes, and the time since its first record, like Kafka's segment.ms), so a
partition keeps between 15/16 of its size bounds and all of them, and a record outlives the age
bound by at most 1/16 of it (plus the sweep interval, on a partition nobody writes to). Offsets
only grow: a consumer that asks for an offset below `start` was overtaken by retention and must
skip ahead.
"""

from __future__ import annotations

import asyncio
from array import array
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from mitra.settings import StreamsSettings

SEGMENTS_PER_BOUND = 16
"""A segment holds at most this fraction of the record and byte bounds (Kafka: segment.bytes)."""


@dataclass(frozen=True)
class Retention:
    """How much a partition keeps; the defaults are `[streams] memory_retention_*`'s.

    `records` and `bytes` (keys and values, as Kafka counts a log) are upper bounds, except
    that the newest segment is never dropped for size: a single record larger than the byte
    bound stays until the next one arrives. `seconds` is the age bound.
    """

    records: int = 10_000
    bytes: int = 4 * 1024 * 1024
    seconds: float = 300.0

    def __post_init__(self) -> None:
        if self.records < 1 or self.bytes < 1 or self.seconds <= 0:
            raise ValueError("retention bounds must be positive")

    @classmethod
    def from_settings(cls, settings: StreamsSettings) -> Retention:
        return cls(
            records=settings.memory_retention_records,
            bytes=settings.memory_retention_bytes,
            seconds=settings.memory_retention_seconds,
        )

    @property
    def segment_records(self) -> int:
        return max(1, self.records // SEGMENTS_PER_BOUND)

    @property
    def segment_bytes(self) -> int:
        return max(1, self.bytes // SEGMENTS_PER_BOUND)

    @property
    def segment_seconds(self) -> float:
        return self.seconds / SEGMENTS_PER_BOUND


class _Segment:
    """Consecutive records from `base` on, in three flat buffers."""

    __slots__ = (
        "_key_numbers",
        "_keys",
        "base",
        "data",
        "ends",
        "key_numbers",
        "newest",
        "oldest",
        "size",
    )

    def __init__(self, base: int, now: float) -> None:
        self.base = base
        self.data = bytearray()  # the values, back to back
        self.ends = array("Q")  # where each record's value ends in `data`
        self.key_numbers = array("I")  # each record's key, as an index into _keys
        self._keys: list[bytes] = []  # the segment's distinct keys (a partition has few)
        self._key_numbers: dict[bytes, int] = {}
        self.oldest = now  # when the first record was appended
        self.newest = now  # when the last record was appended
        self.size = 0  # keys and values, one key per record as Kafka counts them

    def __len__(self) -> int:
        return len(self.ends)

    def append(self, key: bytes, value: bytes, now: float) -> None:
        if not self.ends:
            self.oldest = now
        number = self._key_numbers.get(key)
        if number is None:
            number = self._key_numbers[key] = len(self._keys)
            self._keys.append(key)
        self.key_numbers.append(number)
        self.data += value
        self.ends.append(len(self.data))
        self.size += len(key) + len(value)
        self.newest = now

    def read(self, offset: int, limit: int) -> list[tuple[int, bytes, bytes]]:
        first = offset - self.base
        last = min(len(self.ends), first + limit)
        start = self.ends[first - 1] if first else 0
        records = []
        # A view, so each value is copied once; released before the next append needs to
        # resize the buffer (a bytearray with a live view refuses to).
        with memoryview(self.data) as view:
            for index in range(first, last):
                end = self.ends[index]
                key = self._keys[self.key_numbers[index]]
                records.append((self.base + index, key, bytes(view[start:end])))
                start = end
        return records


class PartitionLog:
    """One partition's retained records, a way to wait for the next append, and retention."""

    def __init__(self, retention: Retention, now: float) -> None:
        self.retention = retention
        self._segments: deque[_Segment] = deque([_Segment(0, now)])
        self.records = 0  # retained
        self.bytes = 0  # retained, keys and values
        self._appended = asyncio.Event()

    @property
    def start(self) -> int:
        """The oldest retained offset (the log start offset)."""
        return self._segments[0].base

    @property
    def end(self) -> int:
        """The offset the next record will get."""
        active = self._segments[-1]
        return active.base + len(active)

    def append(self, records: Sequence[tuple[bytes, bytes]], now: float) -> int:
        """Append (key, value) records in order and apply the retention; returns how many
        records the retention dropped."""
        retention = self.retention
        active = self._segments[-1]
        for key, value in records:
            size = len(key) + len(value)
            if len(active) and (
                len(active) >= retention.segment_records
                or active.size + size > retention.segment_bytes
                or now - active.oldest > retention.segment_seconds
            ):
                active = _Segment(self.end, now)
                self._segments.append(active)
            active.append(key, value, now)
            self.records += 1
            self.bytes += size
        dropped = self.enforce(now)
        # Wake every waiter, then arm a fresh event for the next append.
        appended, self._appended = self._appended, asyncio.Event()
        appended.set()
        return dropped

    def enforce(self, now: float) -> int:
        """Drop the segments the retention no longer covers; returns how many records went."""
        retention = self.retention
        segments = self._segments
        dropped = 0
        while len(segments) > 1 and (
            self.records > retention.records
            or self.bytes > retention.bytes
            or now - segments[0].newest > retention.seconds
        ):
            dropped += self._drop(segments.popleft())
        active = segments[0]
        if len(segments) == 1 and len(active) and now - active.newest > retention.seconds:
            # Everything is older than the age bound: the next record starts a fresh segment.
            end = self.end
            dropped += self._drop(segments.popleft())
            segments.append(_Segment(end, now))
        return dropped

    def _drop(self, segment: _Segment) -> int:
        self.records -= len(segment)
        self.bytes -= segment.size
        return len(segment)

    def read(self, offset: int, limit: int) -> list[tuple[int, bytes, bytes]]:
        """Up to `limit` records from `offset` (at least `start`) on, as (offset, key, value),
        across segment boundaries, so a batch consumer's batches are not cut by them."""
        records: list[tuple[int, bytes, bytes]] = []
        for segment in self._segments:
            if len(records) >= limit:
                break
            if offset < segment.base + len(segment):
                records += segment.read(offset, limit - len(records))
                offset = records[-1][0] + 1
        return records

    async def wait_beyond(self, offset: int) -> None:
        while self.end <= offset:
            await self._appended.wait()
