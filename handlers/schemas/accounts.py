"""Models of the accounts and authentication endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import EmailStr, Field, StringConstraints

from handlers.schemas.common import RequestModel, ResponseModel
from mitra.models import Role

# Exempt from the trimming every other request string gets: a space is part of a passphrase,
# and trimming one side only (register, say, but not a client's own check) locks people out.
Password = Annotated[
    str, StringConstraints(strip_whitespace=False), Field(min_length=1, max_length=1024)
]
Name = Field(min_length=1, max_length=100)


class RegisterRequest(RequestModel):
    tenant: str = Field(min_length=1, max_length=63)
    email: EmailStr
    phone_number: str | None = Field(None, max_length=32)
    password: Password
    first_name: str = Name
    last_name: str = Name
    # Accepted only to be refused clearly: self-registration cannot choose a staff role.
    role: Role | None = None


class LoginRequest(RequestModel):
    identifier: str = Field(min_length=1, max_length=254)
    password: Password


class VerifyOtpRequest(RequestModel):
    mfa_token: str = Field(min_length=1, max_length=4096)
    otp_code: str = Field(pattern=r"^\s*\d{6}\s*$")


class RefreshRequest(RequestModel):
    refresh_token: str = Field(min_length=1, max_length=4096)


class PasswordResetRequest(RequestModel):
    email: EmailStr


class ResetPasswordRequest(RequestModel):
    token: str = Field(min_length=1, max_length=256)
    new_password: Password


class CreateUserRequest(RequestModel):
    email: EmailStr
    phone_number: str | None = Field(None, max_length=32)
    password: Password
    first_name: str = Name
    last_name: str = Name
    role: Role


class UpdateMeRequest(RequestModel):
    first_name: str | None = Field(None, min_length=1, max_length=100)
    last_name: str | None = Field(None, min_length=1, max_length=100)
    email: EmailStr | None = None
    phone_number: str | None = Field(None, max_length=32)
    mfa_enabled: bool | None = None
    current_password: Password | None = Field(
        None,
        description="Required to change email, phone number or password, or to turn MFA off;"
        " wrong guesses count toward the account's lockout",
    )
    new_password: Password | None = None


class TokenResponse(ResponseModel):
    access_token: str
    refresh_token: str
    token_type: str
    expires_in: int


class MfaRequiredResponse(ResponseModel):
    requires_mfa: bool = True
    mfa_token: str
    channel: str
    expires_in: int


class UserResponse(ResponseModel):
    id: uuid.UUID
    tenant_id: uuid.UUID
    email: str
    phone_number: str | None
    first_name: str
    last_name: str
    role: Role
    is_active: bool
    mfa_enabled: bool
    created_at: datetime
    last_login_at: datetime | None
