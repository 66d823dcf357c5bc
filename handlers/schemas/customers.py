"""Models of the customer endpoints."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from pydantic import EmailStr, Field

from handlers.schemas.common import PageQuery, RequestModel, ResponseModel, omittable
from mitra.customers import CustomerSort

LANGUAGE = r"^[a-z]{2,3}(-[A-Za-z0-9]{2,4})?$"
FullName = Field(min_length=1, max_length=200)
Phone = Field(
    min_length=1,
    max_length=32,
    description="any Indian way of writing it (`98765 43210`, `+91-98765-43210`, "
    "`098765 43210`); stored and returned in E.164",
)


class CustomerCreateRequest(RequestModel):
    full_name: str = FullName
    phone: str = Phone
    email: EmailStr | None = None
    date_of_birth: date | None = None
    address: str | None = Field(None, max_length=500)
    preferred_language: str = Field("en", pattern=LANGUAGE, description="BCP 47, e.g. hi, ta")
    agent_id: uuid.UUID | None = Field(None, description="the owning agent; default the caller")
    user_id: uuid.UUID | None = Field(None, description="the linked policyholder account")


class CustomerUpdateRequest(RequestModel):
    full_name: str = omittable(min_length=1, max_length=200)
    phone: str = omittable(min_length=1, max_length=32)
    email: EmailStr | None = None
    date_of_birth: date | None = None
    address: str | None = Field(None, max_length=500)
    preferred_language: str = omittable(pattern=LANGUAGE)
    agent_id: uuid.UUID = omittable()
    user_id: uuid.UUID | None = None


class CustomerListQuery(PageQuery):
    q: str | None = Field(None, max_length=100, description="part of the name or phone number")
    agent_id: uuid.UUID | None = None
    sort: CustomerSort = CustomerSort.NEWEST


class CustomerResponse(ResponseModel):
    id: uuid.UUID
    full_name: str
    phone: str
    email: str | None
    date_of_birth: date | None
    address: str | None
    preferred_language: str
    agent_id: uuid.UUID
    user_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime
    created_by: uuid.UUID | None
    updated_by: uuid.UUID | None
