"""Tenants and users: creation, self-registration and profile changes."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from mitra.auth.lockout import Lockout, locked
from mitra.auth.passwords import PasswordHasher
from mitra.auth.principal import Principal
from mitra.auth.ratelimit import RateLimiter
from mitra.auth.revocation import emit_revoked
from mitra.auth.service import validate_password
from mitra.db import Database, Scope, UnitOfWork, utcnow
from mitra.errors import Conflict, Forbidden, InvalidInput, NotFound
from mitra.models import AuthSession, Role, Tenant, User
from mitra.phones import to_e164
from mitra.settings import AuthSettings

SLUG_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{1,61}[a-z0-9])$")


@dataclass(frozen=True)
class NewUser:
    email: str
    password: str
    first_name: str
    last_name: str
    role: Role
    phone_number: str | None = None


@dataclass(frozen=True)
class ProfileChanges:
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    phone_number: str | None = None
    mfa_enabled: bool | None = None
    current_password: str | None = None
    new_password: str | None = None


class AccountService:
    """Creates tenants and users and applies profile changes, with the role rules on staff."""

    def __init__(
        self,
        database: Database,
        settings: AuthSettings,
        hasher: PasswordHasher,
        *,
        sessions_revoked: Callable[[Iterable[uuid.UUID]], None] | None = None,
        lockout: Lockout | None = None,
    ) -> None:
        """`sessions_revoked` hears of the sessions a password change ended, after the commit
        (the app passes `AuthService.revoked_here`, which evicts them from the session cache).
        `lockout` is the login's, so wrong current passwords count toward the same lock."""
        self._db = database
        self._settings = settings
        self._hasher = hasher
        self._sessions_revoked = sessions_revoked
        self._lockout = lockout or Lockout(settings)
        self.register_limiter = RateLimiter(
            settings.rate_limit_register_per_ip, settings.rate_limit_window_seconds
        )

    async def create_tenant(self, slug: str, name: str, admin: NewUser) -> tuple[Tenant, User]:
        if not SLUG_PATTERN.match(slug):
            raise InvalidInput.for_field(
                "slug", "3-63 lowercase letters, digits or hyphens, not starting or ending with -"
            )
        if admin.role is not Role.SUPER_ADMIN:
            raise InvalidInput.for_field("role", "a tenant's first user is its super_admin")
        password_hash = await self._password_hash(admin)
        async with self._db.session(Scope.system()) as session:
            tenant = Tenant(id=uuid.uuid4(), slug=slug, name=name.strip())
            session.add(tenant)
            try:
                await session.flush()
            except IntegrityError:
                raise Conflict(f"tenant {slug!r} exists") from None
            user = await self._add_user(session, tenant.id, admin, password_hash)
            await session.commit()
        return tenant, user

    async def register(self, tenant_slug: str, new_user: NewUser, client_ip: str) -> User:
        """Self-registration: always a policyholder of an active tenant.

        Anyone may call it and each call costs a password hash, so it is rate limited per
        client address (`auth.rate_limit_register_per_ip`), failed attempts included."""
        self.register_limiter.hit(client_ip)
        if new_user.role is not Role.POLICYHOLDER:
            raise Forbidden("self-registration creates policyholders only")
        password_hash = await self._password_hash(new_user)
        async with self._db.session(Scope.system()) as session:
            tenant = (
                await session.execute(select(Tenant).where(Tenant.slug == tenant_slug))
            ).scalar_one_or_none()
            if tenant is None or not tenant.is_active:
                raise InvalidInput.for_field("tenant", "no such tenant")
            user = await self._add_user(session, tenant.id, new_user, password_hash)
            await session.commit()
        return user

    async def create_user(self, actor: Principal, new_user: NewUser) -> User:
        """A tenant admin makes an account in their own tenant."""
        if not actor.role.is_admin:
            raise Forbidden("only tenant admins create users")
        if new_user.role is Role.SUPER_ADMIN and actor.role is not Role.SUPER_ADMIN:
            raise Forbidden("only a super_admin creates another super_admin")
        password_hash = await self._password_hash(new_user)
        async with self._db.session(Scope.tenant(actor.tenant_id)) as session:
            user = await self._add_user(session, actor.tenant_id, new_user, password_hash)
            await session.commit()
        return user

    async def create_user_in(self, tenant_slug: str, new_user: NewUser) -> User:
        """Operator path (CLI): any role in the named tenant."""
        password_hash = await self._password_hash(new_user)
        async with self._db.session(Scope.system()) as session:
            tenant = (
                await session.execute(select(Tenant).where(Tenant.slug == tenant_slug))
            ).scalar_one_or_none()
            if tenant is None:
                raise NotFound(f"no tenant {tenant_slug!r}")
            user = await self._add_user(session, tenant.id, new_user, password_hash)
            await session.commit()
        return user

    async def get(self, principal: Principal) -> User:
        async with self._db.session(Scope.tenant(principal.tenant_id)) as session:
            user = await session.get(User, principal.user_id)
        if user is None:
            raise NotFound("user not found")
        return user

    async def update_profile(self, principal: Principal, changes: ProfileChanges) -> User:
        """Apply `changes`; those that would let a holder of a stolen access token take the
        account over (email, phone, MFA off, password) need the current password first."""
        async with self._db.session(Scope.tenant(principal.tenant_id)) as session:
            user = await session.get(User, principal.user_id)
            if user is None:
                raise NotFound("user not found")
            email = _email(changes.email) if changes.email is not None else user.email
            phone = (
                _phone(changes.phone_number)
                if changes.phone_number is not None
                else user.phone_number
            )
            sensitive = (
                email != user.email
                or phone != user.phone_number
                or (changes.mfa_enabled is False and user.mfa_enabled)
                or changes.new_password is not None
            )
            if sensitive:
                # Before any change is applied: a wrong guess commits its count, nothing else.
                await self._prove_password(session, user, changes.current_password)
            if changes.first_name is not None:
                user.first_name = _name(changes.first_name, "first_name")
            if changes.last_name is not None:
                user.last_name = _name(changes.last_name, "last_name")
            if email != user.email:
                user.email = email
            if phone != user.phone_number:
                user.phone_number = phone
            if changes.mfa_enabled is not None:
                user.mfa_enabled = changes.mfa_enabled
            revoked: set[uuid.UUID] = set()
            if changes.new_password is not None:
                revoked = await self._change_password(session, user, principal, changes)
            try:
                await session.commit()
            except IntegrityError:
                raise _duplicate() from None
        if revoked:
            self._db.notify_events_committed()
            if self._sessions_revoked is not None:
                self._sessions_revoked(revoked)
        return user

    async def _prove_password(
        self, session: AsyncSession, user: User, current_password: str | None
    ) -> None:
        """The caller knows the account's password, or the change is refused (and counted)."""
        now = utcnow()
        if self._lockout.is_locked(user, now):
            assert user.locked_until is not None
            raise locked(user.locked_until)
        if not current_password:
            raise InvalidInput.for_field(
                "current_password",
                "is required to change the email, phone number, password or to turn MFA off",
            )
        if not await self._hasher.verify(user.password_hash, current_password):
            until = await self._lockout.record_failure(session, user, now)
            if until is not None:
                raise locked(until)
            raise InvalidInput.for_field("current_password", "is wrong")
        user.failed_login_count = 0

    async def _change_password(
        self, session: AsyncSession, user: User, principal: Principal, changes: ProfileChanges
    ) -> set[uuid.UUID]:
        """Set the new password; end the user's other sessions and return their ids."""
        assert changes.new_password is not None
        validate_password(changes.new_password, self._settings, email=user.email)
        user.password_hash = await self._hasher.hash(changes.new_password)
        now = utcnow()
        user.password_changed_at = now
        # Other devices must log in again with the new password; this one keeps its session.
        other_sessions = await session.execute(
            select(AuthSession).where(
                AuthSession.user_id == user.id,
                AuthSession.id != principal.session_id,
                AuthSession.revoked_at.is_(None),
            )
        )
        revoked = set()
        for other in other_sessions.scalars():
            other.revoked_at = now
            other.revoked_reason = "password_changed"
            revoked.add(other.id)
        uow = UnitOfWork(session, Scope.tenant(principal.tenant_id))
        emit_revoked(uow, principal.tenant_id, user.id, revoked, "password_changed")
        return revoked

    async def _password_hash(self, new: NewUser) -> str:
        """Checked and hashed before a database session opens: waiting for a hashing slot must
        not hold a pooled connection, or a burst of sign-ups would starve every other request."""
        validate_password(new.password, self._settings, email=_email(new.email))
        return await self._hasher.hash(new.password)

    async def _add_user(
        self, session: AsyncSession, tenant_id: uuid.UUID, new: NewUser, password_hash: str
    ) -> User:
        email = _email(new.email)
        user = User(
            id=uuid.uuid4(),
            tenant_id=tenant_id,
            email=email,
            phone_number=_phone(new.phone_number) if new.phone_number else None,
            password_hash=password_hash,
            first_name=_name(new.first_name, "first_name"),
            last_name=_name(new.last_name, "last_name"),
            role=new.role,
        )
        session.add(user)
        try:
            await session.flush()
        except IntegrityError:
            raise _duplicate() from None
        return user


def _duplicate() -> Conflict:
    # Which of the two collided is not said: that would tell a stranger who has an account.
    return Conflict("an account with this email or phone number exists")


def _email(value: str) -> str:
    return value.strip().lower()


def _name(value: str, field: str) -> str:
    cleaned = value.strip()
    if not cleaned:
        raise InvalidInput.for_field(field, "must not be blank")
    if len(cleaned) > 100:
        raise InvalidInput.for_field(field, "must be at most 100 characters")
    return cleaned


def _phone(value: str) -> str:
    try:
        return to_e164(value)
    except ValueError as exc:
        raise InvalidInput.for_field("phone_number", str(exc)) from None
