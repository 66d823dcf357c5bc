"""`/api/v1/users`: the caller's own profile, and staff accounts made by tenant admins."""

from __future__ import annotations

from aiohttp import web

from handlers.envelope import ok
from handlers.keys import ACCOUNTS
from handlers.openapi import operation
from handlers.schemas.accounts import CreateUserRequest, UpdateMeRequest, UserResponse
from handlers.security import authenticate, require_role
from handlers.validation import parse_body
from mitra.accounts import NewUser, ProfileChanges
from mitra.models import Role

routes = web.RouteTableDef()
TAGS = ("users",)

ADMINS = (Role.SUPER_ADMIN, Role.PROVIDER_ADMIN)


@routes.get("/api/v1/users/me")
@operation("The caller's profile", tags=TAGS, response=UserResponse)
async def get_me(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    user = await request.app[ACCOUNTS].get(principal)
    return ok(UserResponse.model_validate(user))


@routes.patch("/api/v1/users/me")
@operation(
    "Change the caller's profile, MFA or password",
    description="Changing the email, phone number or password, or turning MFA off, needs"
    " `current_password`. Wrong guesses count toward the lockout the login uses; a locked"
    " account answers 423 with `locked_until`.",
    tags=TAGS,
    body=UpdateMeRequest,
    response=UserResponse,
    errors=(409, 423, 503),
)
async def update_me(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    body = await parse_body(request, UpdateMeRequest)
    changes = ProfileChanges(**body.model_dump(exclude_unset=True))
    user = await request.app[ACCOUNTS].update_profile(principal, changes)
    return ok(UserResponse.model_validate(user), message="updated")


@routes.post("/api/v1/users")
@operation(
    "Create a staff account (tenant admins)",
    tags=TAGS,
    body=CreateUserRequest,
    response=UserResponse,
    status=201,
    errors=(403, 409, 503),
)
async def create_user(request: web.Request) -> web.Response:
    principal = await require_role(request, ADMINS)
    body = await parse_body(request, CreateUserRequest)
    user = await request.app[ACCOUNTS].create_user(
        principal,
        NewUser(
            email=body.email,
            password=body.password,
            first_name=body.first_name,
            last_name=body.last_name,
            role=body.role,
            phone_number=body.phone_number,
        ),
    )
    return ok(UserResponse.model_validate(user), message="user created", status=201)
