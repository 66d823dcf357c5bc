"""Database: declarative models, the engine, tenant scoping and the unit of work."""

from mitra.db._base import Base, TenantOwned, UTCDateTime, string_enum, utcnow
from mitra.db._bulk import BulkInsert
from mitra.db._database import TENANT_SCOPE, Database, Scope, tenant_scoped
from mitra.db._metrics import DbMetrics, current_purpose, db_purpose
from mitra.db._uow import UnitOfWork
from mitra.db._upsert import ConflictInsert, conflict_insert, prebuilt_upsert

__all__ = [
    "TENANT_SCOPE",
    "Base",
    "BulkInsert",
    "ConflictInsert",
    "Database",
    "DbMetrics",
    "Scope",
    "TenantOwned",
    "UTCDateTime",
    "UnitOfWork",
    "conflict_insert",
    "current_purpose",
    "db_purpose",
    "prebuilt_upsert",
    "string_enum",
    "tenant_scoped",
    "utcnow",
]
