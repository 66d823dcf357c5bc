"""The demo tenant that `make run` creates on first start, so a new developer can log in at once."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from mitra.accounts import AccountService, NewUser
from mitra.db import Database, Scope
from mitra.models import Role, Tenant

DEMO_SLUG = "demo"


@dataclass(frozen=True)
class DemoLogin:
    role: Role
    email: str
    password: str


# Development only: settings refuse `server.seed_demo` in production, so these never go live.
DEMO_LOGINS = (
    DemoLogin(Role.SUPER_ADMIN, "admin@demo.example.com", "demo-admin-2026"),
    DemoLogin(Role.SENIOR_AGENT, "agent@demo.example.com", "demo-agent-2026"),
    DemoLogin(Role.POLICYHOLDER, "customer@demo.example.com", "demo-customer-2026"),
)


async def ensure_demo_tenant(database: Database, accounts: AccountService) -> bool:
    """Create the demo tenant and its logins unless it exists; True when it was created now."""
    async with database.session(Scope.system()) as session:
        exists = (
            await session.execute(select(Tenant.id).where(Tenant.slug == DEMO_SLUG))
        ).scalar_one_or_none()
    if exists is not None:
        return False
    admin, *others = DEMO_LOGINS
    await accounts.create_tenant(
        DEMO_SLUG, "Demo Agency", NewUser(admin.email, admin.password, "Asha", "Admin", admin.role)
    )
    for login in others:
        first = login.role.value.split("_")[-1].title()
        await accounts.create_user_in(
            DEMO_SLUG, NewUser(login.email, login.password, first, "Demo", login.role)
        )
    return True


def login_banner(base_url: str) -> str:
    lines = [
        f"Mitra is serving on {base_url}",
        f"Open {base_url}/console/ in a browser and sign in with a demo login.",
        "Demo logins (tenant 'demo'):",
    ]
    lines += [
        f"  {login.role.value:<14} {login.email}  /  {login.password}" for login in DEMO_LOGINS
    ]
    admin = DEMO_LOGINS[0]
    body = f'{{"identifier": "{admin.email}", "password": "{admin.password}"}}'
    lines.append(
        f"Try: curl -s -X POST {base_url}/api/v1/auth/login"
        f" -H 'Content-Type: application/json' -d '{body}'"
    )
    return "\n".join(lines)
