"""Imports: one running import of a file per agent (a partial unique index), the time between
a finish and its retry (left out of rows/s), and when a finished import was seen (a notice
until then).

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

RUNNING = "status IN ('queued', 'parsing', 'validating', 'writing')"


def upgrade() -> None:
    with op.batch_alter_table("imports", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("idle_seconds", sa.Float(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("seen_at", sa.DateTime(timezone=True), nullable=True))
    # Imports that ended before this revision are not news to anyone.
    op.execute("UPDATE imports SET seen_at = finished_at WHERE finished_at IS NOT NULL")
    op.create_index(
        "uq_imports_running_file",
        "imports",
        ["tenant_id", "agent_id", "import_type", "content_hash"],
        unique=True,
        sqlite_where=sa.text(RUNNING),
        postgresql_where=sa.text(RUNNING),
    )


def downgrade() -> None:
    op.drop_index("uq_imports_running_file", table_name="imports")
    with op.batch_alter_table("imports", schema=None) as batch_op:
        batch_op.drop_column("seen_at")
        batch_op.drop_column("idle_seconds")
