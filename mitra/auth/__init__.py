"""Accounts and authentication: passwords, tokens, sessions, MFA, resets and rate limits."""

from mitra.auth.lockout import Lockout
from mitra.auth.notifier import LogNotifier, Notification, Notifier
from mitra.auth.passwords import PasswordHasher
from mitra.auth.principal import Principal
from mitra.auth.ratelimit import RateLimiter
from mitra.auth.revocation import SessionsRevoked
from mitra.auth.service import AuthService, LoginResult, MfaChallengeIssued, TokenPair
from mitra.auth.sessions import RevocationListener, SessionCache
from mitra.auth.tokens import TokenClaims, TokenCodec, TokenKind

__all__ = [
    "AuthService",
    "Lockout",
    "LogNotifier",
    "LoginResult",
    "MfaChallengeIssued",
    "Notification",
    "Notifier",
    "PasswordHasher",
    "Principal",
    "RateLimiter",
    "RevocationListener",
    "SessionCache",
    "SessionsRevoked",
    "TokenClaims",
    "TokenCodec",
    "TokenKind",
    "TokenPair",
]
