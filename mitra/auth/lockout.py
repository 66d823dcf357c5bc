"""Account lockout: the one failed-password counter that login and sensitive changes share."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from mitra.auth.notifier import Notification, Notifier
from mitra.errors import Locked
from mitra.models import User
from mitra.settings import AuthSettings

log = logging.getLogger("mitra.auth")


class Lockout:
    """Counts wrong passwords per account and locks it after `max_failed_logins` in a row.

    The counter lives on the user's row, so guesses on every instance, and guesses of the
    current password behind a stolen access token, all add up to the same limit.
    """

    def __init__(self, settings: AuthSettings, notifier: Notifier | None = None) -> None:
        """`notifier` tells the owner when their account locks; without one nobody is told."""
        self._settings = settings
        self._notifier = notifier

    @staticmethod
    def is_locked(user: User, now: datetime) -> bool:
        return user.locked_until is not None and user.locked_until > now

    async def record_failure(
        self, session: AsyncSession, user: User, now: datetime
    ) -> datetime | None:
        """Count one wrong password and commit it; return the lock's end if this one locked."""
        user_id, email = user.id, user.email
        # Atomic UPDATEs, so concurrent wrong guesses on two instances all count, and of two
        # guesses that both reach the limit only one locks (and notifies).
        failures = (
            await session.execute(
                update(User)
                .where(User.id == user_id)
                .values(failed_login_count=User.failed_login_count + 1)
                .returning(User.failed_login_count)
            )
        ).scalar_one()
        locked_until = None
        if failures >= self._settings.max_failed_logins:
            until = now + timedelta(seconds=self._settings.lockout_seconds)
            claimed = await session.execute(
                update(User)
                .where(
                    User.id == user_id,
                    User.failed_login_count >= self._settings.max_failed_logins,
                )
                .values(failed_login_count=0, locked_until=until)
            )
            if claimed.rowcount == 1:  # type: ignore[attr-defined]
                locked_until = until
        await session.commit()
        if locked_until is not None:
            log.warning("account locked", extra={"fields": {"user_id": str(user_id)}})
            await self._tell_owner(email, locked_until)
        return locked_until

    async def _tell_owner(self, email: str, until: datetime) -> None:
        # Login answers a locked account exactly as a wrong password (so a stranger cannot tell
        # which accounts exist); this message is how the owner learns of the lock instead.
        if self._notifier is None:
            return
        await self._notifier.send(
            Notification(
                channel="email",
                to=email,
                subject="Your Mitra account is locked",
                body=(
                    f"After {self._settings.max_failed_logins} wrong passwords your account is"
                    f" locked until {until.isoformat(timespec='minutes')}. If that was not you,"
                    " reset your password: a reset also lifts the lock."
                ),
                purpose="account_locked",
            )
        )


def locked(until: datetime) -> Locked:
    """The 423 for a caller already signed in to the locked account (nothing to enumerate)."""
    return Locked(
        f"account locked until {until.isoformat()}", extra={"locked_until": until.isoformat()}
    )
