"""`/api/v1/imports`: agents upload spreadsheets of customers and policies and follow them.

The upload is streamed to the imports directory under a generated name while its size is
counted (413 past the limit) and its SHA-256 taken; then its bytes are checked against the
format its name claims (415) and a zip-based workbook against the expansion limits (413),
off the loop. The answer (202) comes at once; the import's actor does the rest.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from pathlib import Path
from typing import Any

from aiohttp import BodyPartReader, web

from handlers.envelope import ok
from handlers.keys import IMPORT_PIPELINES, IMPORTS, SETTINGS
from handlers.openapi import RawResponse, operation
from handlers.records import listing, page_request, path_id
from handlers.schemas.common import IdPath, PageOf
from handlers.schemas.imports import (
    ImportAccepted,
    ImportErrorsQuery,
    ImportListQuery,
    ImportProgress,
    ImportRowErrorResponse,
    ImportUploadFields,
    ImportUploadForm,
    TemplateQuery,
)
from handlers.security import authenticate
from handlers.validation import parse_query, validate
from mitra.errors import InvalidInput, MalformedRequest, MitraError, PayloadTooLarge
from mitra.imports import NewImport, progress_of
from mitra.imports.report import CONTENT_TYPES, failed_rows_file, template_file
from mitra.imports.sniff import claimed_format, sniff
from mitra.models import ImportJob, ImportRowError

routes = web.RouteTableDef()
TAGS = ("imports",)
_FIELD_LIMIT = 200
_CHUNK = 65_536
_BINARY = {"type": "string", "format": "binary"}
XLSX = RawResponse(CONTENT_TYPES["xlsx"], _BINARY, "the rows as an Excel workbook")
CSV = RawResponse("text/csv", {"type": "string"}, "the rows as CSV (UTF-8 with a BOM)")


def _shape(job: ImportJob) -> ImportProgress:
    progress = progress_of(job)
    return ImportProgress(
        id=job.id,
        import_type=job.import_type,
        status=job.status,
        file_name=job.original_name,
        file_format=job.file_format,
        agent_id=job.agent_id,
        uploaded_by=job.uploaded_by,
        total=job.total,
        processed=job.processed,
        created=job.created,
        updated=job.updated,
        unchanged=job.unchanged,
        failed=job.failed,
        unknown_columns=[str(c) for c in job.unknown_columns or []],
        error=job.error,
        rows_per_second=progress["rows_per_second"],
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        seen_at=job.seen_at,
    )


@routes.post("/api/v1/imports")
@operation(
    "Upload a spreadsheet of customers and/or policies to import",
    description="xlsx, xls, ods or csv (its bytes must be what its name says: 415 otherwise). "
    "Answers 202 at once; follow it with GET /api/v1/imports/{id} or the socket's "
    "import_progress frames. The same file uploaded again by the same agent answers with the "
    "earlier import (`duplicate: true`) unless `force` is true.",
    tags=TAGS,
    body=ImportUploadForm,
    body_content_type="multipart/form-data",
    response=ImportAccepted,
    status=202,
    errors=(403, 415),
)
async def upload(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    settings = request.app[SETTINGS].imports
    limit = settings.max_upload_bytes
    # The form's other fields and boundaries are small; the file itself is counted as it comes.
    if request.content_length is not None and request.content_length > limit + _CHUNK:
        raise PayloadTooLarge(f"the upload exceeds {limit} bytes")
    if request.content_type != "multipart/form-data":
        raise MalformedRequest("expected Content-Type: multipart/form-data")
    directory = Path(settings.directory)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, _private_directory, directory)
    fields, upload = await _read_form(request, directory, limit)
    try:
        form = validate(ImportUploadFields, fields)
        if upload is None:
            raise InvalidInput.for_field("file", "is required")
        path, client_name, claimed, digest = upload
        file_format = await loop.run_in_executor(
            None,
            lambda: sniff(
                path,
                claimed,
                max_uncompressed=settings.max_uncompressed_bytes,
                max_ratio=settings.max_compression_ratio,
            ),
        )
        pipelines = request.app[IMPORT_PIPELINES]
        started = await request.app[IMPORTS].create(
            principal,
            NewImport(
                import_type=form.import_type,
                stored_name=path.name,
                original_name=client_name,
                file_format=file_format,
                content_hash=digest,
                sheet=form.sheet,
                agent_id=form.agent_id,
                force=form.force,
            ),
            owner=pipelines.owner,
            lease_seconds=settings.lease_seconds,
        )
    except BaseException:
        if upload is not None:
            upload[0].unlink(missing_ok=True)
        raise
    if started.duplicate:
        path.unlink(missing_ok=True)
        message = "this file was imported before: the earlier import"
    else:
        await pipelines.run(principal.tenant_id, started.job.id)
        message = "import queued"
    job = started.job
    accepted = ImportAccepted(import_id=job.id, status=job.status, duplicate=started.duplicate)
    return ok(accepted, message=message, status=202)


Upload = tuple[Path, str, str, str]
"""A received file: (its path, the client's name for it, the format it claims, SHA-256)."""


async def _read_form(
    request: web.Request, directory: Path, limit: int
) -> tuple[dict[str, str], Upload | None]:
    fields: dict[str, str] = {}
    upload: Upload | None = None
    try:
        reader = await request.multipart()
        async for part in reader:
            if not isinstance(part, BodyPartReader):
                raise MalformedRequest("nested multipart bodies are not accepted")
            if part.name == "file":
                if upload is not None:
                    raise InvalidInput.for_field("file", "give one file")
                upload = await _receive_file(part, directory, limit)
            elif part.name in ImportUploadFields.model_fields and part.name not in fields:
                fields[part.name] = await _read_field(part)
            else:
                raise InvalidInput.for_field(part.name, "unknown field")
    except BaseException as exc:
        if upload is not None:
            upload[0].unlink(missing_ok=True)
        if isinstance(exc, ValueError | AssertionError) and not isinstance(exc, MitraError):
            raise MalformedRequest("malformed multipart body") from None
        raise
    return fields, upload


def _private_directory(directory: Path) -> None:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)


async def _read_field(part: BodyPartReader) -> str:
    data = bytearray()
    while chunk := await part.read_chunk(1024):
        data += chunk
        if len(data) > _FIELD_LIMIT:
            raise InvalidInput.for_field(part.name, f"must be at most {_FIELD_LIMIT} bytes")
    return data.decode("utf-8").strip()


async def _receive_file(part: BodyPartReader, directory: Path, limit: int) -> Upload:
    """Stream the part to a new private file; (path, the client's name, its claimed format,
    SHA-256). The client's name is kept for display only, never as a path."""
    client_name = (part.filename or "").replace("\x00", "").strip()
    if not client_name:
        raise InvalidInput.for_field("file", "must be a file with a name")
    claimed = claimed_format(client_name)
    path = directory / f"{uuid.uuid4().hex}.{claimed}"
    loop = asyncio.get_running_loop()
    descriptor = await loop.run_in_executor(
        None, lambda: os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    )
    digest = hashlib.sha256()
    size = 0
    try:
        while chunk := await part.read_chunk(_CHUNK):
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"the upload exceeds {limit} bytes")
            digest.update(chunk)
            await loop.run_in_executor(None, _write_all, descriptor, chunk)
    except BaseException:
        await loop.run_in_executor(None, os.close, descriptor)
        path.unlink(missing_ok=True)
        raise
    await loop.run_in_executor(None, os.close, descriptor)
    return path, client_name[-255:], claimed, digest.hexdigest()


def _write_all(descriptor: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(descriptor, view) :]


@routes.get("/api/v1/imports")
@operation(
    "List imports: the caller's (admins: the tenant's), newest first",
    description="`unseen=true`: the notices, the caller's finished imports not yet marked seen.",
    tags=TAGS,
    query=ImportListQuery,
    response=PageOf[ImportProgress],
)
async def list_imports(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    query = parse_query(request, ImportListQuery)
    page = await request.app[IMPORTS].list(
        principal, page_request(query.page, query.limit), unseen=query.unseen
    )
    return ok(listing(page, _shape))


@routes.get("/api/v1/imports/template")
@operation(
    "The columns an import expects, with an example row",
    tags=TAGS,
    query=TemplateQuery,
    raw=XLSX,
    alternates=(CSV,),
)
async def template(request: web.Request) -> web.Response:
    await authenticate(request)
    query = parse_query(request, TemplateQuery)
    body = await asyncio.get_running_loop().run_in_executor(
        None, template_file, query.type, query.format
    )
    return _file(body, query.format, f"mitra-{query.type.value}-template.{query.format}")


@routes.get("/api/v1/imports/{id}")
@operation(
    "An import's progress and counts",
    tags=TAGS,
    path=IdPath,
    response=ImportProgress,
    errors=(404,),
)
async def get_import(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    job = await request.app[IMPORTS].get(principal, path_id(request, "import"))
    return ok(_shape(job))


@routes.get("/api/v1/imports/{id}/errors")
@operation(
    "The rows that failed: a page of errors, or every failed row as xlsx or csv",
    description="`format=xlsx|csv` gives back the failed rows with their original values, "
    "their row number and an `Error` column: fix them and upload that file again.",
    tags=TAGS,
    path=IdPath,
    query=ImportErrorsQuery,
    response=PageOf[ImportRowErrorResponse],
    alternates=(XLSX, CSV),
    errors=(404,),
)
async def import_errors(request: web.Request) -> web.StreamResponse:
    principal = await authenticate(request)
    import_id = path_id(request, "import")
    query = parse_query(request, ImportErrorsQuery)
    service = request.app[IMPORTS]
    if query.format == "json":
        page = await service.errors(principal, import_id, page_request(query.page, query.limit))
        return ok(listing(page, _error_shape))
    job, rows = await service.failed_rows(principal, import_id)
    header = [str(cell) for cell in job.header or []]
    body = await asyncio.get_running_loop().run_in_executor(
        None, failed_rows_file, header, rows, query.format
    )
    return _file(body, query.format, f"import-{job.id}-failed-rows.{query.format}")


def _error_shape(error: ImportRowError) -> ImportRowErrorResponse:
    return ImportRowErrorResponse.model_validate(error)


@routes.post("/api/v1/imports/{id}/cancel")
@operation(
    "Cancel a running import (rows already written stay)",
    tags=TAGS,
    path=IdPath,
    response=ImportProgress,
    errors=(404, 409),
)
async def cancel_import(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    job = await request.app[IMPORTS].cancel(principal, path_id(request, "import"))
    # Here, not by the pipeline: an import cancelled while queued may never be run again (its
    # instance gone, or its actor not started yet). A pipeline still reading the file goes on
    # from its open handle, or fails to open it; either way it stops at its next commit.
    stored = Path(request.app[SETTINGS].imports.directory) / job.stored_name
    await asyncio.get_running_loop().run_in_executor(None, _discard, stored)
    return ok(_shape(job), message="import cancelled")


def _discard(path: Path) -> None:
    path.unlink(missing_ok=True)


@routes.post("/api/v1/imports/{id}/seen")
@operation(
    "Mark a finished import seen: it leaves the notices (`?unseen=true`)",
    tags=TAGS,
    path=IdPath,
    response=ImportProgress,
    errors=(404, 409),
)
async def mark_import_seen(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    job = await request.app[IMPORTS].mark_seen(principal, path_id(request, "import"))
    return ok(_shape(job))


@routes.post("/api/v1/imports/{id}/retry")
@operation(
    "Run an import's failed rows again (after a fix elsewhere)",
    tags=TAGS,
    path=IdPath,
    response=ImportProgress,
    status=202,
    errors=(403, 404, 409),
)
async def retry_import(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    pipelines = request.app[IMPORT_PIPELINES]
    job = await request.app[IMPORTS].retry(
        principal,
        path_id(request, "import"),
        owner=pipelines.owner,
        lease_seconds=request.app[SETTINGS].imports.lease_seconds,
    )
    await pipelines.run(principal.tenant_id, job.id)
    return ok(_shape(job), message="failed rows queued again", status=202)


def _file(body: bytes, fmt: str, name: str) -> web.Response:
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    return web.Response(
        body=body,
        headers=headers,
        content_type=_bare(CONTENT_TYPES[fmt]),
        charset="utf-8" if fmt == "csv" else None,
    )


def _bare(content_type: str) -> str:
    return content_type.split(";", maxsplit=1)[0]


__all__: list[Any] = ["routes"]
