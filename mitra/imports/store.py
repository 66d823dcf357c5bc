"""The imports' own rows as the pipeline sees them: claims, stages, totals and the end."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, Table, or_, select, update

from mitra.analytics import IMPORT_FINISHED, AnalyticsFact, emit_analytics
from mitra.db import Database, Scope, utcnow
from mitra.models import ImportJob, ImportRowError, ImportStatus
from mitra.models.imports import RUNNING

_IMPORTS: Table = ImportJob.__table__  # type: ignore[assignment]
_RUNNING = [status.value for status in RUNNING]


def retryable(import_id: uuid.UUID) -> ColumnElement[bool]:
    """The errors of the rows a retry runs again: those that failed for a reason outside the
    file (no such customer yet, another agent's policy, a refused write), which have no column.
    A row whose own cells are wrong (a column's error, or a policy number an earlier row of the
    file took) fails the same way each time: run again after that earlier row was written, a
    duplicate would overwrite it. It is fixed in the file and uploaded again."""
    in_the_file = select(ImportRowError.row_number).where(
        ImportRowError.import_id == import_id, ImportRowError.column.is_not(None)
    )
    return (ImportRowError.import_id == import_id) & ImportRowError.row_number.not_in(in_the_file)


@dataclass(frozen=True)
class Position:
    """Where a running import stands: what the writers committed, and whose it is."""

    status: str
    lease_owner: str | None
    retries: int
    committed_row: int
    processed: int
    created: int
    updated: int
    unchanged: int
    failed: int

    def expects(self, owner: str, retries: int) -> bool:
        """Whether batches of `owner` in run `retries` are still to be written."""
        return self.status in _RUNNING and self.lease_owner == owner and self.retries == retries


_POSITION = tuple(_IMPORTS.c[name] for name in Position.__dataclass_fields__)


class JobStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def position(self, tenant_id: uuid.UUID, import_id: uuid.UUID) -> Position | None:
        """One indexed read of the import's progress (the pipeline asks after each batch)."""
        async with self._db.session(Scope.tenant(tenant_id)) as session:
            found = (
                await session.execute(
                    select(*_POSITION).where(
                        _IMPORTS.c.id == import_id, _IMPORTS.c.tenant_id == tenant_id
                    )
                )
            ).first()
        return Position(*found) if found is not None else None

    async def load(self, tenant_id: uuid.UUID, import_id: uuid.UUID) -> ImportJob | None:
        async with self._db.session(Scope.tenant(tenant_id)) as session:
            return await session.get(ImportJob, import_id)

    async def claim(
        self, tenant_id: uuid.UUID, import_id: uuid.UUID, owner: str, lease_seconds: float
    ) -> bool:
        """Take the import for `owner` if it is running and nobody else's lease is live."""
        now = utcnow()
        table = _IMPORTS
        async with self._db.transaction(Scope.tenant(tenant_id)) as session:
            connection = await session.connection()
            result = await connection.execute(
                update(table)
                .where(
                    table.c.id == import_id,
                    table.c.tenant_id == tenant_id,
                    table.c.status.in_(_RUNNING),
                    or_(
                        table.c.lease_owner.is_(None),
                        table.c.lease_owner == owner,
                        table.c.lease_until < now,
                    ),
                )
                .values(lease_owner=owner, lease_until=now + timedelta(seconds=lease_seconds))
            )
            return bool(result.rowcount == 1)

    async def renew(
        self,
        tenant_id: uuid.UUID,
        import_id: uuid.UUID,
        owner: str,
        lease_seconds: float,
        **values: Any,
    ) -> bool:
        """Extend the lease (and set `values`); False when the import was cancelled or taken."""
        now = utcnow()
        table = _IMPORTS
        async with self._db.transaction(Scope.tenant(tenant_id)) as session:
            connection = await session.connection()
            result = await connection.execute(
                update(table)
                .where(
                    table.c.id == import_id,
                    table.c.tenant_id == tenant_id,
                    table.c.lease_owner == owner,
                    table.c.status.in_(_RUNNING),
                )
                .values(
                    lease_until=now + timedelta(seconds=lease_seconds), updated_at=now, **values
                )
            )
            return bool(result.rowcount == 1)

    async def finish(
        self,
        tenant_id: uuid.UUID,
        import_id: uuid.UUID,
        owner: str,
        *,
        error: str | None = None,
    ) -> ImportJob | None:
        """Completed (with errors when rows failed), or failed with `error`; the analytics
        fact `import.finished` commits with it. None when it was no longer ours."""
        now = utcnow()
        async with self._db.unit_of_work(Scope.tenant(tenant_id)) as uow:
            job = await uow.session.get(ImportJob, import_id, with_for_update=True)
            if job is None or job.lease_owner != owner or job.status not in _RUNNING:
                return None
            if error is not None:
                job.status = ImportStatus.FAILED.value
                job.error = error[:500]
            else:
                # Every non-blank row was processed: an estimated total becomes exact.
                job.total = job.processed
                failed = ImportStatus.COMPLETED_WITH_ERRORS
                job.status = (failed if job.failed else ImportStatus.COMPLETED).value
            job.finished_at = now
            job.lease_owner = None
            job.lease_until = None
            emit_analytics(
                uow,
                IMPORT_FINISHED,
                AnalyticsFact(
                    agent_id=job.agent_id,
                    rows=job.processed,
                    failed_rows=min(job.failed, job.processed),
                ),
            )
        return job

    async def failed_rows(
        self, tenant_id: uuid.UUID, import_id: uuid.UUID, after_row: int, limit: int
    ) -> list[tuple[int, list[Any]]]:
        """The failed rows past `after_row` that a retry may run again, as the file had them."""
        async with self._db.session(Scope.tenant(tenant_id)) as session:
            numbers = (
                select(ImportRowError.row_number)
                .where(retryable(import_id), ImportRowError.row_number > after_row)
                .group_by(ImportRowError.row_number)
                .order_by(ImportRowError.row_number)
                .limit(limit)
            )
            wanted = list((await session.execute(numbers)).scalars())
            if not wanted:
                return []
            found = await session.execute(
                select(ImportRowError.row_number, ImportRowError.raw)
                .where(ImportRowError.import_id == import_id, ImportRowError.row_number.in_(wanted))
                .order_by(ImportRowError.row_number)
            )
            rows: dict[int, list[Any]] = {}
            for number, raw in found:
                rows.setdefault(number, list(raw))
            return list(rows.items())

    async def analyze(self) -> None:
        """Refresh the planner's statistics of the tables an import fills. Without them a
        book that grew by thousands of rows still looks empty, and the planner reads every
        customer of the agent to match a batch by phone or email: on PostgreSQL until
        autovacuum gets to it (a full import went from ~1,600 to ~300 rows/s), on SQLite for
        ever (it keeps no statistics unless asked: with them, a batch's match of 500 phones
        and emails in a book of 30,000 took 1.4 ms instead of 12.8, through the phone and
        email indexes instead of the agent's whole book)."""
        async with self._db.engine.begin() as connection:
            if self._db.is_sqlite:
                await connection.exec_driver_sql("ANALYZE customers")
                await connection.exec_driver_sql("ANALYZE policies")
            else:
                await connection.exec_driver_sql("ANALYZE customers, policies")

    async def orphans(self, now_grace_seconds: float = 0.0) -> list[tuple[uuid.UUID, uuid.UUID]]:
        """(tenant, import) of running imports whose runner's lease ran out."""
        cutoff = utcnow() - timedelta(seconds=now_grace_seconds)
        async with self._db.session(Scope.system()) as session:
            found = await session.execute(
                select(ImportJob.tenant_id, ImportJob.id).where(
                    ImportJob.status.in_(_RUNNING),
                    or_(ImportJob.lease_until.is_(None), ImportJob.lease_until < cutoff),
                )
            )
            return [(tenant, job) for tenant, job in found]
