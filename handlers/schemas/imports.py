"""Models of the import endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import Field

from handlers.schemas.common import PageQuery, QueryModel, RequestModel, ResponseModel
from mitra.models import ImportStatus, ImportType


class ImportUploadFields(RequestModel):
    """The form fields beside the file."""

    import_type: ImportType
    agent_id: uuid.UUID | None = Field(None, description="admins: whose book (default: caller)")
    force: bool = Field(False, description="import even if this agent uploaded the same file")
    sheet: str | None = Field(
        None, min_length=1, max_length=100, description="the sheet to read; default the first"
    )


class ImportUploadForm(ImportUploadFields):
    """`multipart/form-data`: the spreadsheet (xlsx, xls, ods or csv) and its fields."""

    file: bytes = Field(description="the spreadsheet; its name's extension says its format")


class ImportAccepted(ResponseModel):
    import_id: uuid.UUID
    status: ImportStatus
    duplicate: bool = Field(description="true: the same file was imported before; its import")


class ImportProgress(ResponseModel):
    id: uuid.UUID
    import_type: ImportType
    status: ImportStatus
    file_name: str
    file_format: str
    agent_id: uuid.UUID
    uploaded_by: uuid.UUID
    total: int | None
    processed: int
    created: int
    updated: int
    unchanged: int
    failed: int
    unknown_columns: list[str]
    error: str | None
    rows_per_second: float | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    seen_at: datetime | None = Field(
        description="when its agent or uploader marked the finished import seen; until then "
        "it is listed by `GET /api/v1/imports?unseen=true`"
    )


class ImportListQuery(PageQuery):
    unseen: bool = Field(
        False,
        description="only the caller's finished imports not yet marked seen (POST "
        "/api/v1/imports/{id}/seen): what ended while they were away",
    )


class ImportErrorsQuery(PageQuery):
    format: Literal["json", "xlsx", "csv"] = Field(
        "json", description="json: a page of errors; xlsx or csv: every failed row as a file"
    )


class ImportRowErrorResponse(ResponseModel):
    row_number: int
    column: str | None
    value: str | None
    message: str


class TemplateQuery(QueryModel):
    type: ImportType
    format: Literal["xlsx", "csv"] = "xlsx"
