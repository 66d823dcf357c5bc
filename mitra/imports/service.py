"""Imports as agents see them: start one, follow it, read its errors, cancel or retry it."""

from __future__ import annotations

import builtins
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from mitra import access
from mitra.access import Action, Owned
from mitra.auth.principal import Principal
from mitra.db import Database, Scope, utcnow
from mitra.errors import Conflict, InvalidInput, NotFound
from mitra.imports.store import retryable
from mitra.models import ImportJob, ImportRowError, ImportStatus, ImportType
from mitra.models.imports import RUNNING
from mitra.records import AGENT_ROLES, Page, PageRequest, require_user

_RUNNING = [status.value for status in RUNNING]


@dataclass(frozen=True)
class NewImport:
    """An upload already stored under `stored_name` and checked to be `file_format`."""

    import_type: ImportType
    stored_name: str
    original_name: str
    file_format: str
    content_hash: str
    sheet: str | None = None
    agent_id: uuid.UUID | None = None
    force: bool = False


@dataclass(frozen=True)
class Started:
    job: ImportJob
    duplicate: bool


class ImportService:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def create(
        self, principal: Principal, new: NewImport, *, owner: str, lease_seconds: float
    ) -> Started:
        """Record the import (queued, claimed by `owner`), or answer with the earlier import of
        the same file by the same agent unless `force`."""
        agent_id = new.agent_id or principal.user_id
        access.require(principal, Action.CREATE, Owned(agent_id))
        try:
            return await self._create(principal, new, agent_id, owner, lease_seconds)
        except IntegrityError:
            # The same file, uploaded for the same agent at the same moment, is being imported
            # (the partial unique index on running imports): answer with that import.
            pass
        async with self._db.session(Scope.tenant(principal.tenant_id)) as session:
            running = await session.scalar(
                _same_file(agent_id, new).where(ImportJob.status.in_(_RUNNING)).limit(1)
            )
        if running is None:
            raise Conflict("the same file was being imported for this agent: upload it again")
        return Started(running, duplicate=True)

    async def _create(
        self,
        principal: Principal,
        new: NewImport,
        agent_id: uuid.UUID,
        owner: str,
        lease_seconds: float,
    ) -> Started:
        async with self._db.transaction(Scope.tenant(principal.tenant_id)) as session:
            await require_user(session, agent_id, AGENT_ROLES, "agent_id", "agent")
            if not new.force:
                earlier = await session.scalar(
                    _same_file(agent_id, new)
                    .where(
                        ImportJob.status.not_in(
                            [ImportStatus.FAILED.value, ImportStatus.CANCELLED.value]
                        ),
                    )
                    .order_by(ImportJob.created_at.desc())
                    .limit(1)
                )
                if earlier is not None:
                    return Started(earlier, duplicate=True)
            job = ImportJob(
                id=uuid.uuid4(),
                tenant_id=principal.tenant_id,
                agent_id=agent_id,
                uploaded_by=principal.user_id,
                import_type=new.import_type.value,
                status=ImportStatus.QUEUED.value,
                file_format=new.file_format,
                stored_name=new.stored_name,
                original_name=new.original_name[:255],
                content_hash=new.content_hash,
                sheet=new.sheet,
                processed=0,
                created=0,
                updated=0,
                unchanged=0,
                failed=0,
                committed_row=0,
                retries=0,
                lease_owner=owner,
                lease_until=utcnow() + timedelta(seconds=lease_seconds),
            )
            session.add(job)
        return Started(job, duplicate=False)

    async def get(self, principal: Principal, import_id: uuid.UUID) -> ImportJob:
        async with self._db.session(Scope.tenant(principal.tenant_id)) as session:
            job = await session.scalar(
                select(ImportJob).where(ImportJob.id == import_id, _visible(principal))
            )
        if job is None:
            raise NotFound("import not found")
        return job

    async def list(
        self, principal: Principal, page: PageRequest, *, unseen: bool = False
    ) -> Page[ImportJob]:
        """`unseen`: only the finished imports of the caller's (as their agent or uploader) that
        nobody marked seen: the notices of imports that ended while they were away."""
        async with self._db.session(Scope.tenant(principal.tenant_id)) as session:
            statement = select(ImportJob).where(_visible(principal))
            if unseen:
                mine = (ImportJob.agent_id == principal.user_id) | (
                    ImportJob.uploaded_by == principal.user_id
                )
                statement = statement.where(
                    mine, ImportJob.seen_at.is_(None), ImportJob.status.not_in(_RUNNING)
                )
            total = await session.scalar(select(func.count()).select_from(statement.subquery()))
            found = await session.scalars(
                statement.order_by(ImportJob.created_at.desc(), ImportJob.id)
                .limit(page.limit)
                .offset(page.offset)
            )
            return Page(list(found), page.page, page.limit, int(total or 0))

    async def errors(
        self, principal: Principal, import_id: uuid.UUID, page: PageRequest
    ) -> Page[ImportRowError]:
        await self.get(principal, import_id)
        async with self._db.session(Scope.tenant(principal.tenant_id)) as session:
            where = ImportRowError.import_id == import_id
            total = await session.scalar(select(func.count()).where(where))
            found = await session.scalars(
                select(ImportRowError)
                .where(where)
                .order_by(ImportRowError.row_number, ImportRowError.created_at)
                .limit(page.limit)
                .offset(page.offset)
            )
            return Page(list(found), page.page, page.limit, int(total or 0))

    async def failed_rows(
        self, principal: Principal, import_id: uuid.UUID
    ) -> tuple[ImportJob, builtins.list[tuple[int, builtins.list[Any], builtins.list[str]]]]:
        """Every failed row: (row number, the cells as the file had them, its messages)."""
        job = await self.get(principal, import_id)
        async with self._db.session(Scope.tenant(principal.tenant_id)) as session:
            found = await session.execute(
                select(
                    ImportRowError.row_number,
                    ImportRowError.raw,
                    ImportRowError.column,
                    ImportRowError.message,
                )
                .where(ImportRowError.import_id == import_id)
                .order_by(ImportRowError.row_number, ImportRowError.created_at)
            )
            rows: dict[int, tuple[builtins.list[Any], builtins.list[str]]] = {}
            for number, raw, column, message in found:
                entry = rows.setdefault(number, (list(raw), []))
                entry[1].append(f"{column}: {message}" if column else message)
        return job, [(number, raw, messages) for number, (raw, messages) in rows.items()]

    async def mark_seen(self, principal: Principal, import_id: uuid.UUID) -> ImportJob:
        """The caller saw how the import ended: it leaves `?unseen=true`."""
        async with self._db.transaction(Scope.tenant(principal.tenant_id)) as session:
            job = await _locked(session, principal, import_id)
            if job.status in _RUNNING:
                raise Conflict(f"the import is {job.status}: it is seen once it ends")
            if job.seen_at is None:
                job.seen_at = utcnow()
        return job

    async def cancel(self, principal: Principal, import_id: uuid.UUID) -> ImportJob:
        async with self._db.transaction(Scope.tenant(principal.tenant_id)) as session:
            job = await _locked(session, principal, import_id)
            if job.status not in _RUNNING:
                raise Conflict(f"the import is {job.status}: only a running import is cancelled")
            job.status = ImportStatus.CANCELLED.value
            job.finished_at = utcnow()
            job.lease_owner = None
            job.lease_until = None
        return job

    async def retry(
        self, principal: Principal, import_id: uuid.UUID, *, owner: str, lease_seconds: float
    ) -> ImportJob:
        """Queue the failed rows again (after a fix elsewhere, such as a missing agent)."""
        async with self._db.transaction(Scope.tenant(principal.tenant_id)) as session:
            job = await _locked(session, principal, import_id)
            access.require(principal, Action.CREATE, Owned(job.agent_id))
            if job.status != ImportStatus.COMPLETED_WITH_ERRORS.value or not job.header:
                raise Conflict("only an import that completed with failed rows can be retried")
            if (
                await session.scalar(select(ImportRowError.id).where(retryable(job.id)).limit(1))
                is None
            ):
                raise Conflict(
                    "every failed row failed on its own values: fix them in the failed rows' "
                    "file (GET /api/v1/imports/{id}/errors?format=xlsx) and upload it"
                )
            now = utcnow()
            job.status = ImportStatus.QUEUED.value
            job.retries += 1
            job.committed_row = 0
            # started_at stays the import's start; the wait since it finished is left out of
            # its rows/s (`progress_of`).
            if job.finished_at is not None:
                job.idle_seconds += max((now - job.finished_at).total_seconds(), 0.0)
            job.finished_at = None
            job.seen_at = None
            job.lease_owner = owner
            job.lease_until = now + timedelta(seconds=lease_seconds)
            try:
                await session.flush()
            except IntegrityError:
                raise Conflict(
                    "the same file is being imported again for this agent: retry when it ends"
                ) from None
        return job


def _same_file(agent_id: uuid.UUID, new: NewImport) -> Select[ImportJob]:
    return select(ImportJob).where(
        ImportJob.agent_id == agent_id,
        ImportJob.content_hash == new.content_hash,
        ImportJob.import_type == new.import_type.value,
    )


async def _locked(session: AsyncSession, principal: Principal, import_id: uuid.UUID) -> ImportJob:
    """The import the caller may see, locked for this transaction's change; else 404."""
    job = await session.scalar(
        select(ImportJob).where(ImportJob.id == import_id, _visible(principal)).with_for_update()
    )
    if job is None:
        raise NotFound("import not found")
    return job


def _visible(principal: Principal) -> ColumnElement[bool]:
    """Admins see the tenant's imports; anyone else the ones they uploaded or that fill their
    book. Another's is 404, as for any record."""
    if principal.is_admin:
        return true()
    return (ImportJob.uploaded_by == principal.user_id) | (ImportJob.agent_id == principal.user_id)


def require_type(value: str) -> ImportType:
    try:
        return ImportType(value)
    except ValueError:
        raise InvalidInput.for_field(
            "import_type", "must be customers, policies or customers_and_policies"
        ) from None
