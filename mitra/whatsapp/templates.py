"""The tenant's message templates: pulled from Meta on request, listed from the database."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select

from mitra.auth.principal import Principal
from mitra.db import Database, Scope
from mitra.errors import Forbidden, InvalidInput
from mitra.models import WhatsAppTemplate
from mitra.whatsapp.graph import Template
from mitra.whatsapp.setup import WhatsAppNumber


class TemplateBook:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def replace(
        self, principal: Principal, number: WhatsAppNumber, templates: Sequence[Template]
    ) -> list[WhatsAppTemplate]:
        """Store what Meta listed, in place of the last sync (admins)."""
        if not principal.role.is_admin:
            raise Forbidden("only the agency's admins sync its templates")
        async with self._db.transaction(Scope.tenant(principal.tenant_id)) as session:
            await session.execute(delete(WhatsAppTemplate))
            rows = [
                WhatsAppTemplate(
                    tenant_id=number.tenant_id,
                    meta_id=t.id,
                    name=t.name,
                    language=t.language,
                    status=t.status,
                    category=t.category,
                    body_parameters=t.body_parameter_count,
                    header_parameters=t.header_parameter_count,
                )
                for t in {(t.name, t.language): t for t in templates}.values()
            ]
            session.add_all(rows)
        return sorted(rows, key=lambda r: (r.name, r.language))

    async def listing(self, principal: Principal) -> list[WhatsAppTemplate]:
        if not principal.role.is_staff:
            raise Forbidden("only the agency's staff see its templates")
        async with self._db.session(Scope.tenant(principal.tenant_id)) as session:
            rows = await session.scalars(
                select(WhatsAppTemplate).order_by(WhatsAppTemplate.name, WhatsAppTemplate.language)
            )
            return list(rows)


def require_account(number: WhatsAppNumber) -> str:
    if not number.business_account_id:
        raise InvalidInput.for_field(
            "business_account_id", "set the WhatsApp Business Account id to sync templates"
        )
    return number.business_account_id
