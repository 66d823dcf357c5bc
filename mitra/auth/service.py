"""Login, MFA, refresh rotation with reuse detection, logout and password reset."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import secrets
import time
import uuid
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from mitra.auth.lockout import Lockout
from mitra.auth.notifier import Notification, Notifier
from mitra.auth.passwords import PasswordHasher
from mitra.auth.principal import Principal
from mitra.auth.ratelimit import RateLimiter
from mitra.auth.revocation import emit_revoked
from mitra.auth.sessions import RevocationListener, SessionCache
from mitra.auth.tokens import TokenClaims, TokenCodec, TokenKind
from mitra.db import Database, Scope, UnitOfWork, tenant_scoped, utcnow
from mitra.errors import InvalidInput, Unauthorized
from mitra.models import AuthSession, OtpChallenge, PasswordResetToken, RefreshToken, Tenant, User
from mitra.phones import to_e164
from mitra.settings import AuthSettings

log = logging.getLogger("mitra.auth")

INVALID_CREDENTIALS = "invalid credentials"
# Verified access tokens remembered (each until it expires).
VERIFIED_TOKENS = 50_000
# Session ids per `live_sessions` query: well under every driver's bound-parameter limit.
LIVE_SESSIONS_CHUNK = 500
# Built once (every few seconds it runs for every open socket's session).
_LIVE_SESSIONS = (
    select(AuthSession.id)
    .join(User, User.id == AuthSession.user_id)
    .where(
        AuthSession.id.in_(bindparam("ids", expanding=True)),
        AuthSession.revoked_at.is_(None),
        User.is_active,
    )
)


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "bearer"  # noqa: S105 - the OAuth token type, not a secret


@dataclass(frozen=True)
class MfaChallengeIssued:
    mfa_token: str
    channel: str
    expires_in: int


LoginResult = TokenPair | MfaChallengeIssued


@dataclass(frozen=True)
class ClientInfo:
    ip: str
    user_agent: str | None = None


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def validate_password(password: str, settings: AuthSettings, *, email: str | None = None) -> None:
    if len(password) < settings.password_min_length:
        raise InvalidInput.for_field(
            "password", f"must be at least {settings.password_min_length} characters"
        )
    # argon2 accepts any length, so the cap protects the CPU, not the hash.
    if len(password) > 128:
        raise InvalidInput.for_field("password", "must be at most 128 characters")
    if email and password.lower() == email.lower():
        raise InvalidInput.for_field("password", "must not be the email address")
    if len(set(password)) < 4:
        raise InvalidInput.for_field("password", "is too simple")


class AuthService:
    """Authentication flows; every method is a coroutine and never blocks the loop."""

    def __init__(
        self,
        database: Database,
        settings: AuthSettings,
        hasher: PasswordHasher,
        tokens: TokenCodec,
        notifier: Notifier,
        *,
        sessions: SessionCache | None = None,
        lockout: Lockout | None = None,
    ) -> None:
        self._db = database
        self._settings = settings
        self._hasher = hasher
        self._tokens = tokens
        self._notifier = notifier
        self._lockout = lockout or Lockout(settings, notifier)
        self._verified: dict[str, tuple[TokenClaims, float]] = {}
        self.sessions = sessions or SessionCache(
            settings.session_cache_seconds, settings.session_cache_size
        )
        window = settings.rate_limit_window_seconds
        self.ip_limiter = RateLimiter(settings.rate_limit_per_ip, window)
        self.account_limiter = RateLimiter(settings.rate_limit_per_account, window)

    # -- login -------------------------------------------------------------------------------

    async def login(self, identifier: str, password: str, client: ClientInfo) -> LoginResult:
        account_key = identifier.strip().lower()
        self.ip_limiter.hit(f"login:ip:{client.ip}")
        self.account_limiter.hit(f"login:acct:{account_key}")
        now = utcnow()
        async with self._db.session(Scope.system()) as session:
            user = await self._find_by_identifier(session, account_key)
            # A locked account answers as a wrong password does, after the same hashing work: a
            # distinct answer (or a quicker one) would tell a stranger that the account exists.
            locked = user is not None and self._lockout.is_locked(user, now)
            ok = await self._hasher.verify(user.password_hash if user else None, password)
            if user is None or locked or not ok:
                if user is not None and not locked:
                    await self._lockout.record_failure(session, user, now)
                raise Unauthorized(INVALID_CREDENTIALS)
            if not user.is_active or not await self._tenant_active(session, user.tenant_id):
                raise Unauthorized("account disabled")
            user.failed_login_count = 0
            user.locked_until = None
            if self._hasher.needs_rehash(user.password_hash):
                user.password_hash = await self._hasher.hash(password)
            if user.mfa_enabled:
                challenge = await self._start_mfa(session, user, now)
                await session.commit()
                await self._send_otp(user, challenge[1])
                return challenge[0]
            user.last_login_at = now
            pair = self._open_session(session, user, client, now)
            await session.commit()
        self.account_limiter.reset(f"login:acct:{account_key}")
        return pair

    async def _find_by_identifier(self, session: AsyncSession, identifier: str) -> User | None:
        clauses = [User.email == identifier]
        if "@" not in identifier:
            with contextlib.suppress(ValueError):
                clauses.append(User.phone_number == to_e164(identifier))
        result = await session.execute(select(User).where(or_(*clauses)))
        return result.scalars().first()

    async def _tenant_active(self, session: AsyncSession, tenant_id: uuid.UUID) -> bool:
        tenant = await session.get(Tenant, tenant_id)
        return tenant is not None and tenant.is_active

    # -- MFA ---------------------------------------------------------------------------------

    async def _start_mfa(
        self, session: AsyncSession, user: User, now: datetime
    ) -> tuple[MfaChallengeIssued, str]:
        code = f"{secrets.randbelow(1_000_000):06d}"
        challenge = OtpChallenge(
            id=uuid.uuid4(),
            tenant_id=user.tenant_id,
            user_id=user.id,
            code_hash=await self._hasher.hash(code),
            expires_at=now + self._tokens.ttl(TokenKind.MFA),
        )
        session.add(challenge)
        token, _ = self._tokens.issue(
            TokenKind.MFA,
            user_id=user.id,
            tenant_id=user.tenant_id,
            role=user.role,
            jti=challenge.id,
            now=now,
        )
        channel = "sms" if user.phone_number else "email"
        issued = MfaChallengeIssued(
            mfa_token=token,
            channel=channel,
            expires_in=int(self._tokens.ttl(TokenKind.MFA).total_seconds()),
        )
        return issued, code

    async def _send_otp(self, user: User, code: str) -> None:
        minutes = self._settings.otp_ttl_seconds // 60
        body = f"Your Mitra login code is {{code}}. It expires in {minutes} minutes."
        await self._notifier.send(
            Notification(
                channel="sms" if user.phone_number else "email",
                to=user.phone_number or user.email,
                subject="Your Mitra login code",
                body=body,
                secret=code,
                purpose="login_otp",
            )
        )

    async def verify_otp(self, mfa_token: str, code: str, client: ClientInfo) -> TokenPair:
        self.ip_limiter.hit(f"otp:ip:{client.ip}")
        claims = self._tokens.decode(mfa_token, TokenKind.MFA)
        self.account_limiter.hit(f"otp:acct:{claims.sub}")
        now = utcnow()
        async with self._db.session(Scope.tenant(claims.tenant_id)) as session:
            challenge = await session.get(OtpChallenge, claims.jti)
            if challenge is None or challenge.user_id != claims.sub:
                raise Unauthorized("invalid code")
            if challenge.consumed_at is not None:
                raise Unauthorized("code already used")
            if challenge.expires_at <= now:
                raise Unauthorized("code expired")
            if challenge.attempts >= self._settings.otp_max_attempts:
                raise Unauthorized("too many attempts; log in again")
            # Count the attempt before checking it, so parallel guesses cannot exceed the limit.
            result = await session.execute(
                update(OtpChallenge)
                .where(
                    OtpChallenge.id == challenge.id,
                    OtpChallenge.attempts < self._settings.otp_max_attempts,
                    OtpChallenge.consumed_at.is_(None),
                )
                .values(attempts=OtpChallenge.attempts + 1)
                .returning(OtpChallenge.attempts)
            )
            attempts = result.scalar_one_or_none()
            await session.commit()
            if attempts is None:
                raise Unauthorized("too many attempts; log in again")
            if not await self._hasher.verify(challenge.code_hash, code.strip()):
                left = self._settings.otp_max_attempts - attempts
                raise Unauthorized(f"invalid code; {left} attempts left")
            claimed = await session.execute(
                update(OtpChallenge)
                .where(OtpChallenge.id == challenge.id, OtpChallenge.consumed_at.is_(None))
                .values(consumed_at=now)
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                raise Unauthorized("code already used")
            user = await session.get(User, claims.sub)
            if user is None or not user.is_active:
                raise Unauthorized("account disabled")
            user.last_login_at = now
            pair = self._open_session(session, user, client, now)
            await session.commit()
        return pair

    # -- sessions and refresh ----------------------------------------------------------------

    def _open_session(
        self, session: AsyncSession, user: User, client: ClientInfo, now: datetime
    ) -> TokenPair:
        auth_session = AuthSession(
            id=uuid.uuid4(),
            tenant_id=user.tenant_id,
            user_id=user.id,
            expires_at=now + self._tokens.ttl(TokenKind.REFRESH),
            user_agent=(client.user_agent or "")[:300] or None,
            ip_address=client.ip[:64],
        )
        session.add(auth_session)
        return self._issue_pair(session, user, auth_session.id, now)

    def _issue_pair(
        self, session: AsyncSession, user: User, session_id: uuid.UUID, now: datetime
    ) -> TokenPair:
        refresh_row = RefreshToken(
            id=uuid.uuid4(),
            tenant_id=user.tenant_id,
            session_id=session_id,
            expires_at=now + self._tokens.ttl(TokenKind.REFRESH),
        )
        session.add(refresh_row)
        common = {"user_id": user.id, "tenant_id": user.tenant_id, "role": user.role, "now": now}
        access, _ = self._tokens.issue(TokenKind.ACCESS, session_id=session_id, **common)  # type: ignore[arg-type]
        refresh, _ = self._tokens.issue(
            TokenKind.REFRESH,
            jti=refresh_row.id,
            session_id=session_id,
            **common,  # type: ignore[arg-type]
        )
        return TokenPair(
            access_token=access,
            refresh_token=refresh,
            expires_in=int(self._tokens.ttl(TokenKind.ACCESS).total_seconds()),
        )

    async def refresh(self, refresh_token: str) -> TokenPair:
        claims = self._tokens.decode(refresh_token, TokenKind.REFRESH)
        if claims.session_id is None:
            raise Unauthorized("invalid token")
        now = utcnow()
        async with self._db.session(Scope.tenant(claims.tenant_id)) as session:
            auth_session = await session.get(AuthSession, claims.session_id)
            if auth_session is None or auth_session.revoked_at is not None:
                raise Unauthorized("session revoked")
            used = await session.execute(
                update(RefreshToken)
                .where(
                    RefreshToken.id == claims.jti,
                    RefreshToken.session_id == claims.session_id,
                    RefreshToken.used_at.is_(None),
                )
                .values(used_at=now)
            )
            if used.rowcount != 1:  # type: ignore[attr-defined]
                # A rotated token came back: someone holds a copy. Revoke the whole family.
                auth_session.revoked_at = now
                auth_session.revoked_reason = "refresh_token_reuse"
                uow = UnitOfWork(session, Scope.tenant(claims.tenant_id))
                revoked = {auth_session.id}
                emit_revoked(uow, claims.tenant_id, auth_session.user_id, revoked, "refresh_reuse")
                await session.commit()
                self.revoked_here(revoked)
                log.warning(
                    "refresh token reuse; session revoked",
                    extra={"fields": {"session_id": str(auth_session.id)}},
                )
                raise Unauthorized("refresh token already used; session revoked")
            user = await session.get(User, claims.sub)
            if user is None or not user.is_active:
                raise Unauthorized("account disabled")
            pair = self._issue_pair(session, user, auth_session.id, now)
            await session.commit()
        return pair

    async def logout(self, principal: Principal) -> None:
        async with self._db.unit_of_work(Scope.tenant(principal.tenant_id)) as uow:
            revoked = set(
                (
                    await uow.session.execute(
                        update(AuthSession)
                        .where(
                            AuthSession.id == principal.session_id,
                            AuthSession.revoked_at.is_(None),
                        )
                        .values(revoked_at=utcnow(), revoked_reason="logout")
                        .returning(AuthSession.id)
                    )
                ).scalars()
            )
            emit_revoked(uow, principal.tenant_id, principal.user_id, revoked, "logout")
        self.revoked_here({principal.session_id})

    async def authenticate(self, access_token: str) -> Principal:
        """Resolve an access token to a principal; the session must still be live."""
        return await self.principal_for(self._verified_access(access_token))

    def _verified_access(self, token: str) -> TokenClaims:
        # A token's signature and claims never change: verify each token once, then only check
        # that it has not expired (decoding costs tens of microseconds on every request).
        entry = self._verified.get(token)
        now = time.time()
        if entry is not None and entry[1] > now:
            return entry[0]
        claims = self._tokens.decode(token, TokenKind.ACCESS)
        if len(self._verified) >= VERIFIED_TOKENS:
            self._verified = {k: v for k, v in self._verified.items() if v[1] > now}
            if len(self._verified) >= VERIFIED_TOKENS:
                self._verified.clear()
        self._verified[token] = (claims, claims.expires_at.timestamp())
        return claims

    async def principal_for(self, claims: TokenClaims) -> Principal:
        """The principal of a verified access token whose session is live and user active.

        Answered from the session cache when it can be (no database round trip); a revoked
        session is evicted from it at once here and within moments on every other instance.
        """
        session_id = claims.session_id
        if session_id is None:
            raise Unauthorized("invalid token")
        cached = self.sessions.get(session_id)
        # The cached principal answers only for the user and tenant its database row had: a
        # token naming another (forged with a leaked key, say) is looked up and refused.
        if (
            cached is not None
            and cached.user_id == claims.sub
            and cached.tenant_id == claims.tenant_id
        ):
            return cached
        principal = await self._db.read_sync(
            Scope.tenant(claims.tenant_id), lambda session: _load_principal(session, claims)
        )
        self.sessions.put(principal)
        return principal

    # -- revocation --------------------------------------------------------------------------

    def add_revocation_listener(self, callback: RevocationListener) -> Callable[[], None]:
        """Call `callback(session_ids)` on the event loop whenever sessions are revoked.

        It is called on the instance that revoked them right after the commit, and on every
        instance (that one too, again) when the `auth.sessions` event arrives: it must be quick,
        non-blocking and idempotent. Returns a function that removes the listener.
        """
        return self.sessions.add_listener(callback)

    def revoked_here(self, session_ids: Iterable[uuid.UUID]) -> None:
        """Sessions this instance has just revoked (committed): evict them, tell the listeners,
        and wake the outbox relay so the event reaches the other instances promptly."""
        self._db.notify_events_committed()
        self.sessions.revoke(session_ids)

    def revoked_elsewhere(self, session_ids: Iterable[uuid.UUID]) -> None:
        """Sessions named by an `auth.sessions` event (from any instance, this one included)."""
        self.sessions.revoke(session_ids)

    async def live_sessions(self, session_ids: Collection[uuid.UUID]) -> frozenset[uuid.UUID]:
        """Which of these sessions are still live (not revoked, user active): one query per
        chunk of ids, whatever tenants they belong to. For re-checking open sockets."""
        ids = list(dict.fromkeys(session_ids))
        live: set[uuid.UUID] = set()
        for start in range(0, len(ids), LIVE_SESSIONS_CHUNK):
            chunk = ids[start : start + LIVE_SESSIONS_CHUNK]

            def query(session: Session, chunk: list[uuid.UUID] = chunk) -> list[uuid.UUID]:
                return list(session.execute(_LIVE_SESSIONS, {"ids": chunk}).scalars())

            live.update(await self._db.read_sync(Scope.system(), query))
        return frozenset(live)

    # -- password reset ----------------------------------------------------------------------

    async def request_password_reset(self, email: str, client: ClientInfo) -> None:
        """Same answer whether or not the email exists; only a real account gets a message."""
        address = email.strip().lower()
        self.ip_limiter.hit(f"reset:ip:{client.ip}")
        self.account_limiter.hit(f"reset:acct:{address}")
        now = utcnow()
        token = secrets.token_urlsafe(32)
        async with self._db.transaction(Scope.system()) as session:
            user = (
                await session.execute(select(User).where(User.email == address))
            ).scalar_one_or_none()
            if user is None or not user.is_active:
                return
            session.add(
                PasswordResetToken(
                    tenant_id=user.tenant_id,
                    user_id=user.id,
                    token_hash=sha256_hex(token),
                    expires_at=now + timedelta(seconds=self._settings.reset_token_ttl_seconds),
                )
            )
        await self._notifier.send(
            Notification(
                channel="email",
                to=address,
                subject="Reset your Mitra password",
                body="Use this token to reset your password: {token}",
                secret=token,
                purpose="password_reset",
            )
        )

    async def reset_password(self, token: str, new_password: str, client: ClientInfo) -> None:
        self.ip_limiter.hit(f"reset:ip:{client.ip}")
        now = utcnow()
        async with self._db.session(Scope.system()) as session:
            row = (
                await session.execute(
                    select(PasswordResetToken).where(
                        PasswordResetToken.token_hash == sha256_hex(token)
                    )
                )
            ).scalar_one_or_none()
            if row is None or row.used_at is not None or row.expires_at <= now:
                raise InvalidInput.for_field("token", "invalid or expired reset token")
            user = await session.get(User, row.user_id)
            if user is None:
                raise InvalidInput.for_field("token", "invalid or expired reset token")
            validate_password(new_password, self._settings, email=user.email)
            claimed = await session.execute(
                update(PasswordResetToken)
                .where(PasswordResetToken.id == row.id, PasswordResetToken.used_at.is_(None))
                .values(used_at=now)
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                raise InvalidInput.for_field("token", "invalid or expired reset token")
            user.password_hash = await self._hasher.hash(new_password)
            user.password_changed_at = now
            user.failed_login_count = 0
            user.locked_until = None
            # A reset means the old password may be known to someone else: end every session.
            revoked = set(
                (
                    await session.execute(
                        update(AuthSession)
                        .where(AuthSession.user_id == user.id, AuthSession.revoked_at.is_(None))
                        .values(revoked_at=now, revoked_reason="password_reset")
                        .returning(AuthSession.id)
                    )
                ).scalars()
            )
            uow = UnitOfWork(session, Scope.system())
            emit_revoked(uow, user.tenant_id, user.id, revoked, "password_reset")
            await session.commit()
        self.revoked_here(revoked)


# The principal's columns, as one row: no ORM objects per request, and the statement is built
# once (its tenant scope attached) and reused with bound parameters.
_PRINCIPAL = tenant_scoped(
    select(User.id, User.tenant_id, User.role, User.email, User.is_active, AuthSession.revoked_at)
    .join(AuthSession, AuthSession.user_id == User.id)
    .where(User.id == bindparam("user_id"), AuthSession.id == bindparam("session_id"))
)


def _load_principal(session: Session, claims: TokenClaims) -> Principal:
    row = session.execute(
        _PRINCIPAL, {"user_id": claims.sub, "session_id": claims.session_id}
    ).first()
    if row is None:
        raise Unauthorized("invalid token")
    user_id, tenant_id, role, email, is_active, revoked_at = row
    if revoked_at is not None:
        raise Unauthorized("session revoked")
    if not is_active:
        raise Unauthorized("account disabled")
    assert claims.session_id is not None
    return Principal(
        user_id=user_id, tenant_id=tenant_id, role=role, session_id=claims.session_id, email=email
    )
