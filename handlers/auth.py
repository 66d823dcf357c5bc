"""`/api/v1/auth/*`: register, login, OTP, refresh, logout and password reset."""

from __future__ import annotations

from aiohttp import web

from handlers.envelope import ok
from handlers.keys import ACCOUNTS, AUTH
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


def _tokens(pair: TokenPair) -> TokenResponse:
    return TokenResponse.model_validate(pair)


@routes.post("/api/v1/auth/register")
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
    )
    return ok(UserResponse.model_validate(user), message="registered", status=201)


@routes.post("/api/v1/auth/login")
async def login(request: web.Request) -> web.Response:
    body = await parse_body(request, LoginRequest)
    result = await request.app[AUTH].login(body.identifier, body.password, client_info(request))
    if isinstance(result, MfaChallengeIssued):
        return ok(MfaRequiredResponse.model_validate(result), message="code sent")
    return ok(_tokens(result), message="logged in")


@routes.post("/api/v1/auth/verify-otp")
async def verify_otp(request: web.Request) -> web.Response:
    body = await parse_body(request, VerifyOtpRequest)
    pair = await request.app[AUTH].verify_otp(body.mfa_token, body.otp_code, client_info(request))
    return ok(_tokens(pair), message="logged in")


@routes.post("/api/v1/auth/refresh")
async def refresh(request: web.Request) -> web.Response:
    body = await parse_body(request, RefreshRequest)
    return ok(_tokens(await request.app[AUTH].refresh(body.refresh_token)), message="refreshed")


@routes.post("/api/v1/auth/logout")
async def logout(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    await request.app[AUTH].logout(principal)
    return ok(message="logged out")


@routes.post("/api/v1/auth/request-password-reset")
async def request_password_reset(request: web.Request) -> web.Response:
    body = await parse_body(request, PasswordResetRequest)
    await request.app[AUTH].request_password_reset(body.email, client_info(request))
    return ok(message="if the email is registered, a reset message is on its way")


@routes.post("/api/v1/auth/reset-password")
async def reset_password(request: web.Request) -> web.Response:
    body = await parse_body(request, ResetPasswordRequest)
    await request.app[AUTH].reset_password(body.token, body.new_password, client_info(request))
    return ok(message="password changed; log in again")
