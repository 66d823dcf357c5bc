"""Conversations for tests: staff accounts and a conversation among them, made through services."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from handlers.keys import AUTH, CONVERSATIONS
from mitra.auth import Principal
from mitra.models import Role
from tests.support.api import Account, Api


@dataclass
class Room:
    tenant_id: uuid.UUID
    conversation_id: uuid.UUID
    members: list[Account]
    principals: list[Principal]


async def principal_of(api: Api, account: Account) -> Principal:
    return await api.app[AUTH].authenticate(account.access_token)


async def staff_room(api: Api, size: int = 2, admin: Account | None = None) -> Room:
    admin = admin or await api.tenant()
    members = [admin] + [await api.user(admin, Role.SENIOR_AGENT) for _ in range(size - 1)]
    principals = [await principal_of(api, member) for member in members]
    summary = await api.app[CONVERSATIONS].open_among_staff(
        principals[0], [p.user_id for p in principals[1:]], title="team"
    )
    return Room(principals[0].tenant_id, summary.id, members, principals)
