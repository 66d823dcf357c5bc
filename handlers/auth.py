"""`/api/v1/auth/*`: register, login, OTP, refresh, logout and password reset."""

from __future__ import annotations

from aiohttp import web

from handlers.envelope import ok
from handlers.keys import ACCOUNTS, AUTH
from handlers.openapi import operation
from handlers.schemas.accounts import (
    LoginRequest,
    MfaRequiredResponse,
    PasswordResetRequest,
    RefreshRequest,
    RegisterRequest,
    ResetPasswordRequest,
    TokenResponse,
    UserResponse,
    VerifyOtpRequest,
)
from handlers.security import authenticate, client_info
from handlers.validation import parse_body
from mitra.accounts import NewUser
from mitra.auth import MfaChallengeIssued, TokenPair
from mitra.models import Role

routes = web.RouteTableDef()
TAGS = ("auth",)


def _tokens(pair: TokenPair) -> TokenResponse:
    return TokenResponse.model_validate(pair)


@routes.post("/api/v1/auth/register")
@operation(
    "Register a policyholder account",
    tags=TAGS,
    auth=False,
    body=RegisterRequest,
    response=UserResponse,
    status=201,
    errors=(403, 409, 429, 503),
)
async def register(request: web.Request) -> web.Response:
    body = await parse_body(request, RegisterRequest)
    user = await request.app[ACCOUNTS].register(
        body.tenant,
        NewUser(
            email=body.email,
            password=body.password,
            first_name=body.first_name,
            last_name=body.last_name,
            role=body.role or Role.POLICYHOLDER,
            phone_number=body.phone_number,
        ),
        client_info(request).ip,
    )
    return ok(UserResponse.model_validate(user), message="registered", status=201)


@routes.post("/api/v1/auth/login")
@operation(
    "Log in with email or phone number",
    description="Answers with tokens, or with an MFA challenge when the account has MFA on. A"
    " locked account answers 401 `invalid credentials`, as a wrong password or an unknown"
    " account does; its owner is told of the lock by email.",
    tags=TAGS,
    auth=False,
    body=LoginRequest,
    response=TokenResponse | MfaRequiredResponse,
    errors=(401, 429, 503),
)
async def login(request: web.Request) -> web.Response:
    body = await parse_body(request, LoginRequest)
    result = await request.app[AUTH].login(body.identifier, body.password, client_info(request))
    if isinstance(result, MfaChallengeIssued):
        return ok(MfaRequiredResponse.model_validate(result), message="code sent")
    return ok(_tokens(result), message="logged in")


@routes.post("/api/v1/auth/verify-otp")
@operation(
    "Finish an MFA login with the one-time code",
    tags=TAGS,
    auth=False,
    body=VerifyOtpRequest,
    response=TokenResponse,
    errors=(401, 429, 503),
)
async def verify_otp(request: web.Request) -> web.Response:
    body = await parse_body(request, VerifyOtpRequest)
    pair = await request.app[AUTH].verify_otp(body.mfa_token, body.otp_code, client_info(request))
    return ok(_tokens(pair), message="logged in")


@routes.post("/api/v1/auth/refresh")
@operation(
    "Rotate a refresh token",
    description="A reused refresh token revokes its whole session.",
    tags=TAGS,
    auth=False,
    body=RefreshRequest,
    response=TokenResponse,
    errors=(401,),
)
async def refresh(request: web.Request) -> web.Response:
    body = await parse_body(request, RefreshRequest)
    return ok(_tokens(await request.app[AUTH].refresh(body.refresh_token)), message="refreshed")


@routes.post("/api/v1/auth/logout")
@operation("Log out: revoke this session", tags=TAGS)
async def logout(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    await request.app[AUTH].logout(principal)
    return ok(message="logged out")


@routes.post("/api/v1/auth/request-password-reset")
@operation(
    "Ask for a password reset message",
    description="The same answer whether or not the email is registered.",
    tags=TAGS,
    auth=False,
    body=PasswordResetRequest,
    errors=(429,),
)
async def request_password_reset(request: web.Request) -> web.Response:
    body = await parse_body(request, PasswordResetRequest)
    await request.app[AUTH].request_password_reset(body.email, client_info(request))
    return ok(message="if the email is registered, a reset message is on its way")


@routes.post("/api/v1/auth/reset-password")
@operation(
    "Set a new password with a reset token",
    tags=TAGS,
    auth=False,
    body=ResetPasswordRequest,
    errors=(429, 503),
)
async def reset_password(request: web.Request) -> web.Response:
    body = await parse_body(request, ResetPasswordRequest)
    await request.app[AUTH].reset_password(body.token, body.new_password, client_info(request))
    return ok(message="password changed; log in again")
