"""Spreadsheet imports of customers and policies: sniffing, parsing, validating, writing."""

from mitra.imports.pipeline import Pipeline, progress_of
from mitra.imports.service import ImportService, NewImport, Started
from mitra.imports.store import JobStore
from mitra.imports.writer import ImportWriter

__all__ = [
    "ImportService",
    "ImportWriter",
    "JobStore",
    "NewImport",
    "Pipeline",
    "Started",
    "progress_of",
]
