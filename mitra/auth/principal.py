"""Who is calling: the authenticated user as every service sees it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from mitra.models import Role


@dataclass(frozen=True)
class Principal:
    """An authenticated user, resolved from a valid access token and a live session."""

    user_id: uuid.UUID
    tenant_id: uuid.UUID
    role: Role
    session_id: uuid.UUID
    email: str

    @property
    def is_admin(self) -> bool:
        return self.role.is_admin
