"""argon2id password hashing, run off the event loop because each hash costs tens of ms of CPU."""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from typing import TypeVar

import argon2

from mitra.errors import Overloaded
from mitra.settings import AuthSettings

T = TypeVar("T")


class PasswordHasher:
    """Hashes and verifies in a worker thread; argon2-cffi releases the GIL while it works.

    At most `argon2_max_concurrent` hashes run at once: each holds `argon2_memory_kib` while it
    works, so a burst of registrations or logins would otherwise take memory in proportion to
    the burst. A caller waits up to `argon2_wait_seconds` for its turn, then gets `Overloaded`.
    `engine` replaces the argon2 hasher (tests count what runs at once through it).
    """

    def __init__(self, settings: AuthSettings, engine: argon2.PasswordHasher | None = None) -> None:
        self._hasher = engine or argon2.PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
            type=argon2.Type.ID,
        )
        self._slots = asyncio.Semaphore(settings.argon2_max_concurrent)
        self._wait_seconds = settings.argon2_wait_seconds
        self._decoy: str | None = None

    async def hash(self, password: str) -> str:
        return await self._in_turn(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        return await self._in_turn(self._verify, password_hash, password)

    async def _in_turn(self, work: Callable[..., T], *args: object) -> T:
        try:
            async with asyncio.timeout(self._wait_seconds):
                await self._slots.acquire()
        except TimeoutError:
            raise Overloaded(
                "too many password checks at once; retry shortly", retry_after_seconds=1
            ) from None
        loop = asyncio.get_running_loop()
        call = functools.partial(contextvars.copy_context().run, work, *args)
        running = loop.run_in_executor(None, call)
        # The slot is freed when the thread is done, not when the caller stops waiting: a
        # client that hangs up mid-hash must not let another hash start beside the one still
        # running, or hanging up would be a way around the bound.
        running.add_done_callback(lambda _: self._slots.release())
        return await asyncio.shield(running)

    def _verify(self, password_hash: str | None, password: str) -> bool:
        if password_hash is None:
            # Verifying against a decoy when the account does not exist keeps the response time
            # the same, so timing does not tell an attacker which emails are registered.
            if self._decoy is None:
                self._decoy = self._hasher.hash("decoy password that matches nothing")
            self._check(self._decoy, password)
            return False
        return self._check(password_hash, password)

    def _check(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)
