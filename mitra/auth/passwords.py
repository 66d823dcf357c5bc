"""argon2id password hashing, run off the event loop because each hash costs tens of ms of CPU."""

from __future__ import annotations

import asyncio

import argon2

from mitra.settings import AuthSettings


class PasswordHasher:
    """Hashes and verifies in a worker thread; argon2-cffi releases the GIL while it works."""

    def __init__(self, settings: AuthSettings) -> None:
        self._hasher = argon2.PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
            type=argon2.Type.ID,
        )
        self._decoy: str | None = None

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        return await asyncio.to_thread(self._verify, password_hash, password)

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
