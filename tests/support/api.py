"""A thin client over the HTTP API that reads like what a user does."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from handlers.keys import ACCOUNTS
from mitra.accounts import NewUser
from mitra.models import Role
from tests.support.notifier import RecordingNotifier

PASSWORD = "correct horse battery"


@dataclass
class Account:
    email: str
    password: str
    tenant_slug: str
    role: Role
    access_token: str = ""
    refresh_token: str = ""
    user_id: str = ""

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


class Api:
    def __init__(
        self, client: TestClient[Any, Any], app: web.Application, notifier: RecordingNotifier
    ) -> None:
        self.client = client
        self.app = app
        self.notifier = notifier

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        token: str | None = None,
        expect: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        all_headers = dict(headers or {})
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        response = await self.client.request(method, path, json=json, headers=all_headers)
        body = await response.json()
        if expect is not None:
            assert response.status == expect, (response.status, body)
        return response.status, body

    async def tenant(self, slug: str | None = None) -> Account:
        """A fresh tenant with its super_admin, logged in."""
        slug = slug or f"t-{uuid.uuid4().hex[:8]}"
        email = f"admin@{slug}.example.com"
        await self.app[ACCOUNTS].create_tenant(
            slug, slug.title(), NewUser(email, PASSWORD, "Ada", "Admin", Role.SUPER_ADMIN)
        )
        account = Account(email, PASSWORD, slug, Role.SUPER_ADMIN)
        await self.login(account)
        return account

    async def user(self, admin: Account, role: Role, **fields: Any) -> Account:
        """A staff account made by `admin` through the API, logged in."""
        email = fields.pop("email", f"{role.value}-{uuid.uuid4().hex[:8]}@example.com")
        body = {
            "email": email,
            "password": PASSWORD,
            "first_name": "Test",
            "last_name": role.value.title(),
            "role": role.value,
            **fields,
        }
        await self.call("POST", "/api/v1/users", json=body, token=admin.access_token, expect=201)
        account = Account(email, PASSWORD, admin.tenant_slug, role)
        await self.login(account)
        return account

    async def register(self, tenant_slug: str, **fields: Any) -> Account:
        email = fields.pop("email", f"holder-{uuid.uuid4().hex[:8]}@example.com")
        body = {
            "tenant": tenant_slug,
            "email": email,
            "password": PASSWORD,
            "first_name": "Priya",
            "last_name": "Sharma",
            **fields,
        }
        await self.call("POST", "/api/v1/auth/register", json=body, expect=201)
        account = Account(email, PASSWORD, tenant_slug, Role.POLICYHOLDER)
        await self.login(account)
        return account

    async def login(self, account: Account) -> None:
        _, body = await self.call(
            "POST",
            "/api/v1/auth/login",
            json={"identifier": account.email, "password": account.password},
            expect=200,
        )
        account.access_token = body["data"]["access_token"]
        account.refresh_token = body["data"]["refresh_token"]
        _, me = await self.call("GET", "/api/v1/users/me", token=account.access_token, expect=200)
        account.user_id = me["data"]["id"]
