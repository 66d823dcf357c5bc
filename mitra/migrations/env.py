"""Alembic environment: runs migrations on the connection that `mitra.migrate` hands over."""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import DateTime

import mitra.models  # noqa: F401 - registers every table on the metadata
from mitra.db import Base, UTCDateTime


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    # Migrations are frozen history: they name plain SQLAlchemy types, never the app's own.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa." + repr(DateTime(timezone=True))
    return False


connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `mitra migrate`, which supplies the connection")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    render_item=render_item,
)
with context.begin_transaction():
    context.run_migrations()
