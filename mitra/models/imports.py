"""Spreadsheet imports: one row per uploaded file, and the rows of it that failed."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from mitra.db import Base, TenantOwned


class ImportStatus(enum.StrEnum):
    QUEUED = "queued"
    PARSING = "parsing"
    VALIDATING = "validating"
    WRITING = "writing"
    COMPLETED = "completed"
    COMPLETED_WITH_ERRORS = "completed_with_errors"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def running(self) -> bool:
        return self in RUNNING


RUNNING = frozenset(
    {ImportStatus.QUEUED, ImportStatus.PARSING, ImportStatus.VALIDATING, ImportStatus.WRITING}
)
RUNNING_SQL = "status IN ('queued', 'parsing', 'validating', 'writing')"


class ImportType(enum.StrEnum):
    CUSTOMERS = "customers"
    POLICIES = "policies"
    CUSTOMERS_AND_POLICIES = "customers_and_policies"


class ImportJob(TenantOwned, Base):
    """One uploaded file and how far its pipeline got.

    `committed_row` is the source row number of the last row of the last committed batch: the
    counts and the error rows of every batch commit with it, so a pipeline that resumes after a
    crash skips exactly the rows already counted. `lease_owner`/`lease_until` say which instance
    runs it; an expired lease is how another instance knows the runner died.
    """

    __tablename__ = "imports"
    __table_args__ = (
        Index("ix_imports_tenant_agent_hash", "tenant_id", "agent_id", "content_hash"),
        Index("ix_imports_status", "status"),
        # One running import of a file per agent: two identical uploads at the same moment
        # both find no earlier import; the second insert fails here and answers the first.
        Index(
            "uq_imports_running_file",
            "tenant_id",
            "agent_id",
            "import_type",
            "content_hash",
            unique=True,
            sqlite_where=text(RUNNING_SQL),
            postgresql_where=text(RUNNING_SQL),
        ),
    )

    agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    uploaded_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    import_type: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(32), default=ImportStatus.QUEUED.value)
    file_format: Mapped[str] = mapped_column(String(8))
    stored_name: Mapped[str] = mapped_column(String(64))
    original_name: Mapped[str] = mapped_column(String(255))
    content_hash: Mapped[str] = mapped_column(String(64))
    sheet: Mapped[str | None] = mapped_column(String(100))
    header: Mapped[list[Any] | None] = mapped_column(JSON)
    unknown_columns: Mapped[list[Any] | None] = mapped_column(JSON)
    total: Mapped[int | None] = mapped_column(Integer)
    processed: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    committed_row: Mapped[int] = mapped_column(Integer, default=0)
    retries: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(String(500))
    idle_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    """Time between a finish and the retry after it: not part of the import's rows/s."""
    seen_at: Mapped[datetime | None]
    """When the agent (or the uploader) saw that it finished; unset, the import is a notice."""


class ImportRowError(TenantOwned, Base):
    """What is wrong with one value (or a whole row) of an import, with the row as it was."""

    __tablename__ = "import_errors"
    __table_args__ = (Index("ix_import_errors_import_row", "import_id", "row_number"),)

    import_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("imports.id", ondelete="CASCADE"))
    row_number: Mapped[int] = mapped_column(Integer)
    column: Mapped[str | None] = mapped_column(String(200))
    value: Mapped[str | None] = mapped_column(String(500))
    message: Mapped[str] = mapped_column(String(500))
    raw: Mapped[list[Any]] = mapped_column(JSON)
