"""The session cache on its own: TTL, bounded size, and revocations that cannot be undone."""

from __future__ import annotations

import uuid

from mitra.auth.principal import Principal
from mitra.auth.sessions import SessionCache
from mitra.models import Role


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def principal(session_id: uuid.UUID | None = None) -> Principal:
    return Principal(
        user_id=uuid.uuid4(),
        tenant_id=uuid.uuid4(),
        role=Role.SENIOR_AGENT,
        session_id=session_id or uuid.uuid4(),
        email="a@example.com",
    )


def test_entries_live_for_the_ttl() -> None:
    clock = Clock()
    cache = SessionCache(4, clock=clock)
    p = principal()
    cache.put(p)
    assert cache.get(p.session_id) == p
    clock.now += 3.9
    assert cache.get(p.session_id) == p
    clock.now += 0.2
    assert cache.get(p.session_id) is None
    assert cache.hits == 2
    assert cache.misses == 1


def test_a_zero_ttl_caches_nothing() -> None:
    cache = SessionCache(0)
    p = principal()
    cache.put(p)
    assert cache.get(p.session_id) is None


def test_the_size_is_bounded() -> None:
    clock = Clock()
    cache = SessionCache(60, max_entries=100, clock=clock)
    people = [principal() for _ in range(1000)]
    for p in people:
        cache.put(p)
        clock.now += 0.001
    assert len(cache) <= 100
    assert cache.get(people[-1].session_id) == people[-1]


def test_a_revoked_session_is_evicted_and_not_cached_again_within_the_ttl() -> None:
    clock = Clock()
    cache = SessionCache(4, clock=clock)
    heard: list[frozenset[uuid.UUID]] = []
    remove = cache.add_listener(heard.append)
    p = principal()
    cache.put(p)
    cache.revoke([p.session_id])
    assert cache.get(p.session_id) is None
    # A read that raced the revocation comes back with the live row: it is not cached.
    cache.put(p)
    assert cache.get(p.session_id) is None
    assert heard == [frozenset({p.session_id})]
    remove()
    cache.revoke([p.session_id])
    assert len(heard) == 1
    clock.now += 5
    cache.put(p)
    assert cache.get(p.session_id) == p


def test_a_failing_listener_does_not_stop_the_others() -> None:
    cache = SessionCache(4)
    heard: list[frozenset[uuid.UUID]] = []

    def broken(_: frozenset[uuid.UUID]) -> None:
        raise RuntimeError("boom")

    cache.add_listener(broken)
    cache.add_listener(heard.append)
    session_id = uuid.uuid4()
    cache.revoke([session_id])
    assert heard == [frozenset({session_id})]
