"""Database: declarative models, the engine, tenant scoping and the unit of work."""

from mitra.db._base import Base, TenantOwned, UTCDateTime, string_enum, utcnow
from mitra.db._database import Database, Scope
from mitra.db._uow import UnitOfWork

__all__ = [
    "Base",
    "Database",
    "Scope",
    "TenantOwned",
    "UTCDateTime",
    "UnitOfWork",
    "string_enum",
    "utcnow",
]
