"""`mitra payments reconcile`: the reconciliation report of a window, from the command line."""

from __future__ import annotations

import argparse
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import select

from mitra.auth.principal import Principal
from mitra.db import Database, Scope
from mitra.errors import InvalidInput, NotFound
from mitra.integrations import IntegrationService, SecretBox
from mitra.models import Role, Tenant
from mitra.payments.factories import gateway_factories
from mitra.payments.reconcile import reconcile_window
from mitra.payments.store import PaymentStore
from mitra.settings import Settings

# The operator at the console acts as the tenant's admin; no session stands behind it.
_CONSOLE = uuid.UUID(int=0)


def add_commands(commands: Any) -> None:
    payments = commands.add_parser("payments", help="premium payments").add_subparsers(
        dest="action", required=True
    )
    reconcile = payments.add_parser(
        "reconcile", help="compare a window's payments with the gateway's list (repairs nothing)"
    )
    reconcile.add_argument("--tenant", required=True, help="the tenant's slug")
    reconcile.add_argument("--gateway", required=True, choices=["razorpay", "stripe"])
    reconcile.add_argument("--from", dest="start", required=True, help="ISO date or time (UTC)")
    reconcile.add_argument("--to", dest="end", required=True, help="ISO date or time (UTC)")


async def reconcile(database: Database, settings: Settings, args: argparse.Namespace) -> int:
    async with database.session(Scope.system()) as session:
        tenant_id = await session.scalar(select(Tenant.id).where(Tenant.slug == args.tenant))
    if tenant_id is None:
        raise NotFound(f"no tenant {args.tenant!r}")
    integrations = IntegrationService(database, SecretBox(settings.integrations.secrets_key))
    credentials = await integrations.credentials(tenant_id, args.gateway)
    if credentials is None:
        raise NotFound(f"tenant {args.tenant!r} has no {args.gateway} integration")
    gateway = gateway_factories(settings.payments)[args.gateway](credentials)
    principal = Principal(_CONSOLE, tenant_id, Role.SUPER_ADMIN, _CONSOLE, "console")
    report = await reconcile_window(
        PaymentStore(database, settings.payments.currency),
        principal,
        gateway,
        _moment(args.start, "from"),
        _moment(args.end, "to"),
    )
    print(orjson.dumps(report.__dict__, option=orjson.OPT_INDENT_2, default=str).decode())
    return 0 if not (report.mismatched or report.missing_at_gateway or report.missing_here) else 3


def _moment(text: str, field: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput.for_field(field, "expected an ISO date or time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
