"""Alembic migrations of Mitra's schema; run them with `mitra migrate`."""
