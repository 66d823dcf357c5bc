"""Kafka's default key partitioner (murmur2), so the memory backend places keys as Kafka does.

A small own copy keeps the memory backend free of aiokafka; a test checks that it agrees with
`aiokafka.partitioner.murmur2`.
"""

from __future__ import annotations

import functools

_MASK32 = 0xFFFFFFFF
_SEED = 0x9747B28C
_M = 0x5BD1E995
_R = 24


def murmur2(data: bytes) -> int:
    """MurmurHash2 of `data` as Kafka's clients compute it, as an unsigned 32-bit int.

    Java returns the same bits as a signed int; partitioning masks the sign bit off either way.
    """
    length = len(data)
    h = (_SEED ^ length) & _MASK32
    whole = length - length % 4
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * _M) & _MASK32
        k ^= k >> _R
        k = (k * _M) & _MASK32
        h = (h * _M) & _MASK32
        h ^= k
    tail = length % 4
    if tail == 3:
        h ^= data[whole + 2] << 16
    if tail >= 2:
        h ^= data[whole + 1] << 8
    if tail >= 1:
        h ^= data[whole]
        h = (h * _M) & _MASK32
    h ^= h >> 13
    h = (h * _M) & _MASK32
    h ^= h >> 15
    return h


@functools.lru_cache(maxsize=1 << 16)
def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for a non-null key.

    Cached: the keys are ids of conversations and tenants, published again and again, and the
    hash in pure Python was ~2 % of the event loop under chat load.
    """
    if partitions < 1:
        raise ValueError("a topic has at least one partition")
    return (murmur2(key) & 0x7FFFFFFF) % partitions
