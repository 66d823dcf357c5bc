"""`mitra import FILE --tenant T --agent EMAIL --type T`: the same pipeline from a terminal.

The file is copied into the imports directory under a generated name, checked like an upload,
and imported in this process with a progress bar (rich) on stderr. Exit codes: 0 when every row
was imported, 1 when rows failed, the import failed or the file was refused (wrong type, too
large), 2 for arguments refused or a missing file.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import shutil
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import select

from mitra.auth.principal import Principal
from mitra.db import Database, Scope
from mitra.errors import NotFound
from mitra.imports.pipeline import Pipeline
from mitra.imports.service import ImportService, NewImport, require_type
from mitra.imports.sniff import claimed_format, sniff
from mitra.imports.store import JobStore
from mitra.imports.writer import ImportWriter
from mitra.imports.writing import BatchWriting, LocalHandoff
from mitra.models import ImportJob, Tenant, User
from mitra.settings import Settings

_OWNER_PREFIX = "cli-"


def add_import_command(commands: Any) -> None:
    command = commands.add_parser("import", help="import a spreadsheet of customers/policies")
    command.add_argument("file", help="an xlsx, xls, ods or csv file")
    command.add_argument("--tenant", required=True, help="the tenant's slug")
    command.add_argument("--agent", required=True, help="the email of the agent whose book")
    command.add_argument(
        "--type",
        required=True,
        dest="import_type",
        choices=["customers", "policies", "customers_and_policies"],
    )
    command.add_argument("--sheet", help="the sheet to read (default: the first)")
    command.add_argument("--force", action="store_true", help="import a file imported before")


async def run_import(settings: Settings, database: Database, args: argparse.Namespace) -> int:
    source = Path(args.file)
    if not await asyncio.to_thread(source.is_file):
        print(f"mitra: no file {source}", file=sys.stderr)
        return 2
    principal = await _agent(database, args.tenant, args.agent)
    imports = settings.imports
    directory = Path(imports.directory)
    await asyncio.to_thread(directory.mkdir, mode=0o700, parents=True, exist_ok=True)
    claimed = claimed_format(source.name)
    stored = directory / f"{uuid.uuid4().hex}.{claimed}"
    await asyncio.to_thread(shutil.copyfile, source, stored)
    owner = _OWNER_PREFIX + uuid.uuid4().hex
    try:
        file_format = await asyncio.to_thread(
            sniff,
            stored,
            claimed,
            max_uncompressed=imports.max_uncompressed_bytes,
            max_ratio=imports.max_compression_ratio,
        )
        digest = await asyncio.to_thread(_sha256, stored)
        started = await ImportService(database).create(
            principal,
            NewImport(
                import_type=require_type(args.import_type),
                stored_name=stored.name,
                original_name=source.name,
                file_format=file_format,
                content_hash=digest,
                sheet=args.sheet,
                force=args.force,
            ),
            owner=owner,
            lease_seconds=imports.lease_seconds,
        )
    except BaseException:
        stored.unlink(missing_ok=True)
        raise
    if started.duplicate:
        stored.unlink(missing_ok=True)
        job = started.job
        print(f"this file was imported before: import {job.id} ({job.status}); --force imports it")
        return 0 if job.status == "completed" else 1
    job = await _run_with_bar(settings, database, principal, started.job.id, owner)
    return _report(job)


async def _agent(database: Database, slug: str, email: str) -> Principal:
    async with database.session(Scope.system()) as session:
        tenant = await session.scalar(select(Tenant).where(Tenant.slug == slug))
        if tenant is None:
            raise NotFound(f"no tenant {slug!r}")
        user = await session.scalar(
            select(User).where(User.tenant_id == tenant.id, User.email == email.strip().lower())
        )
        if user is None:
            raise NotFound(f"no user {email!r} in {slug!r}")
    return Principal(user.id, tenant.id, user.role, uuid.uuid4(), user.email)


async def _run_with_bar(
    settings: Settings,
    database: Database,
    principal: Principal,
    import_id: uuid.UUID,
    owner: str,
) -> ImportJob:
    loop = asyncio.get_running_loop()
    columns = (
        TextColumn("[bold]{task.fields[status]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("created {task.fields[created]} · updated {task.fields[updated]} · "
                   "unchanged {task.fields[unchanged]} · failed {task.fields[failed]}"),
        TimeElapsedColumn(),
    )  # fmt: skip
    fields: dict[str, Any] = {
        "status": "queued",
        "created": 0,
        "updated": 0,
        "unchanged": 0,
        "failed": 0,
    }
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task("import", total=None, **fields)

        def progress(_tenant: uuid.UUID, _users: list[uuid.UUID], frame: dict[str, Any]) -> None:
            shown = {key: frame[key] for key in fields}
            bar.update(task, total=frame["total"], completed=frame["processed"], **shown)

        pipeline = Pipeline(
            principal.tenant_id,
            import_id,
            store=JobStore(database),
            # No server, no writer consumer: the batches are written on this process's loop.
            handoff=LocalHandoff(
                BatchWriting(ImportWriter(database), JobStore(database), settings.imports), loop
            ),
            settings=settings.imports.model_copy(update={"progress_interval_seconds": 0.2}),
            owner=owner,
            run=lambda coro: asyncio.run_coroutine_threadsafe(coro, loop).result(),
            submit=lambda coro: asyncio.run_coroutine_threadsafe(coro, loop),
            progress=progress,
            stopping=threading.Event(),
        )
        # The parse and validation run on a thread of their own, as on the actor's.
        await asyncio.to_thread(pipeline.run)
    job = await JobStore(database).load(principal.tenant_id, import_id)
    if job is None:
        raise NotFound("the import disappeared")
    return job


def _report(job: ImportJob) -> int:
    print(
        f"import {job.id}: {job.status}; {job.processed} of {job.total or 0} rows: "
        f"{job.created} created, {job.updated} updated, {job.unchanged} unchanged, "
        f"{job.failed} failed"
    )
    if job.error:
        print(f"mitra: {job.error}", file=sys.stderr)
    if job.failed:
        print(f"the failed rows: GET /api/v1/imports/{job.id}/errors?format=xlsx")
    return 0 if job.status == "completed" else 1


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1_048_576):
            digest.update(chunk)
    return digest.hexdigest()


__all__ = ["add_import_command", "run_import"]
