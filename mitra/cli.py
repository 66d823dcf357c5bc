"""The `mitra` command: parses arguments and runs the operator commands of the core.

`serve` is handed in by the entry point (`handlers.cli`), because serving needs the HTTP layer
and the core does not import it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from mitra import migrate
from mitra.accounts import AccountService, NewUser
from mitra.auth import PasswordHasher
from mitra.customers import CustomerService
from mitra.db import Database
from mitra.demo_book import seed_book
from mitra.errors import MitraError
from mitra.models import Role
from mitra.password_input import PasswordInputError, add_password_input, read_password
from mitra.payments import cli as payments_cli
from mitra.policies import PolicyService
from mitra.settings import Settings, SettingsError, load_settings

ServeCommand = Callable[[Settings, argparse.Namespace], int]
# The commands that set a password, and what their prompt calls it.
PASSWORD_FIELDS = {("tenant", "create"): "admin password", ("user", "create"): "password"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mitra", description="Mitra messaging server")
    parser.add_argument("--config", help="TOML file merged over the defaults")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve HTTP and WebSocket")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--config", dest="serve_config", help="TOML file merged over the defaults")

    commands.add_parser("migrate", help="bring the database schema to the latest revision")

    tenant = commands.add_parser("tenant", help="manage tenants").add_subparsers(
        dest="action", required=True
    )
    create_tenant = tenant.add_parser("create", help="create a tenant and its super_admin")
    create_tenant.add_argument("slug")
    create_tenant.add_argument("--name", required=True)
    create_tenant.add_argument("--admin-email", required=True)
    add_password_input(create_tenant, "--admin-password")
    create_tenant.add_argument("--admin-first-name", default="Tenant")
    create_tenant.add_argument("--admin-last-name", default="Admin")

    user = commands.add_parser("user", help="manage users").add_subparsers(
        dest="action", required=True
    )
    create_user = user.add_parser("create", help="create a user in a tenant")
    create_user.add_argument("--tenant", required=True)
    create_user.add_argument("--email", required=True)
    create_user.add_argument("--phone")
    add_password_input(create_user, "--password")
    create_user.add_argument("--role", required=True, choices=[role.value for role in Role])
    create_user.add_argument("--first-name", default="New")
    create_user.add_argument("--last-name", default="User")

    demo = commands.add_parser("demo", help="demo data (development only)").add_subparsers(
        dest="action", required=True
    )
    seed = demo.add_parser("seed", help="give a tenant a small book of customers and policies")
    seed.add_argument("--tenant", required=True)
    payments_cli.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None, *, serve: ServeCommand | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = getattr(args, "serve_config", None) or args.config
    try:
        settings = load_settings(config)
    except SettingsError as exc:
        print(f"mitra: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        if serve is None:
            print("mitra: serve is not available from this entry point", file=sys.stderr)
            return 2
        return serve(settings, args)
    field = PASSWORD_FIELDS.get((args.command, getattr(args, "action", "")))
    try:
        if field is not None:
            # Asked before anything opens (or migrates) the database: a password that cannot
            # be read changes nothing.
            args.password = read_password(args, field)
    except PasswordInputError as exc:
        print(f"mitra: {exc}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_operator_command(settings, args))
    except MitraError as exc:
        detail = "; ".join(f"{e.field}: {e.message}" for e in exc.errors)
        print(f"mitra: {exc.message}" + (f" ({detail})" if detail else ""), file=sys.stderr)
        return 1


async def _operator_command(settings: Settings, args: argparse.Namespace) -> int:
    if args.command == "demo" and settings.is_production:
        # Refused before the database is opened: production never gets demo data.
        print("mitra: demo data is development-only; refused in production", file=sys.stderr)
        return 2
    database = Database(settings.database)
    try:
        await migrate.upgrade(database)
        if args.command == "migrate":
            print(f"database at revision {await migrate.current_revision(database)}")
            return 0
        accounts = AccountService(database, settings.auth, PasswordHasher(settings.auth))
        handlers: dict[tuple[str, str], Callable[[], Coroutine[Any, Any, int]]] = {
            ("tenant", "create"): lambda: _create_tenant(accounts, args),
            ("user", "create"): lambda: _create_user(accounts, args),
            ("demo", "seed"): lambda: _seed_demo(database, args),
            ("payments", "reconcile"): lambda: payments_cli.reconcile(database, settings, args),
        }
        return await handlers[(args.command, args.action)]()
    finally:
        await database.dispose()


async def _create_tenant(accounts: AccountService, args: argparse.Namespace) -> int:
    tenant, admin = await accounts.create_tenant(
        args.slug,
        args.name,
        NewUser(
            email=args.admin_email,
            password=args.password,
            first_name=args.admin_first_name,
            last_name=args.admin_last_name,
            role=Role.SUPER_ADMIN,
        ),
    )
    print(f"tenant {tenant.slug} ({tenant.id}) created; super_admin {admin.email}")
    return 0


async def _create_user(accounts: AccountService, args: argparse.Namespace) -> int:
    user = await accounts.create_user_in(
        args.tenant,
        NewUser(
            email=args.email,
            password=args.password,
            first_name=args.first_name,
            last_name=args.last_name,
            role=Role(args.role),
            phone_number=args.phone,
        ),
    )
    print(f"user {user.email} ({user.role.value}) created in {args.tenant}")
    return 0


async def _seed_demo(database: Database, args: argparse.Namespace) -> int:
    book = await seed_book(
        database, CustomerService(database), PolicyService(database), args.tenant
    )
    if book is None:
        print(f"tenant {args.tenant} has customers already; nothing seeded")
    else:
        print(
            f"seeded {args.tenant}: {book.customers} customers, {book.policies} policies,"
            f" {book.conversations} conversations"
        )
    return 0
