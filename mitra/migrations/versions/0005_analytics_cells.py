"""Analytics cells: one row per (tenant, day, agent, metric, dimension), on a unique index.

Revision ID: 0005
Revises: 0004

The consumer now folds a batch with one upsert per cell (ON CONFLICT on this index) instead of an
UPDATE that found its row by a partial index and scanned the rest. `agent_key` is `agent_id`, or
the nil UUID for figures credited to no agent, because both databases treat NULLs in a unique
index as distinct. Cells the old fold split over several rows (two consumers racing in a
rebalance; readers summed them) are merged into one row first, so no figure changes.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

NO_AGENT = uuid.UUID(int=0)  # mitra.models.NO_AGENT, repeated: a migration must not change later
CELL = ("tenant_id", "day", "agent_key", "metric", "dimension")

cells = sa.table(
    "analytics_daily",
    sa.column("id", sa.Uuid()),
    sa.column("tenant_id", sa.Uuid()),
    sa.column("day", sa.Date()),
    sa.column("agent_id", sa.Uuid()),
    sa.column("agent_key", sa.Uuid()),
    sa.column("metric", sa.String()),
    sa.column("dimension", sa.String()),
    sa.column("count", sa.Integer()),
    sa.column("amount", sa.Numeric(14, 2)),
)


def upgrade() -> None:
    with op.batch_alter_table("analytics_daily", schema=None) as batch_op:
        batch_op.add_column(sa.Column("agent_key", sa.Uuid(), nullable=True))
    bind = op.get_bind()
    bind.execute(
        cells.update().where(cells.c.agent_id.is_not(None)).values(agent_key=cells.c.agent_id)
    )
    bind.execute(cells.update().where(cells.c.agent_id.is_(None)).values(agent_key=NO_AGENT))
    _merge_split_cells(bind)
    with op.batch_alter_table("analytics_daily", schema=None) as batch_op:
        batch_op.alter_column("agent_key", existing_type=sa.Uuid(), nullable=False)
        batch_op.drop_index("ix_analytics_daily_lookup")
        batch_op.create_index("uq_analytics_daily_cell", list(CELL), unique=True)


def _merge_split_cells(bind: sa.Connection) -> None:
    """Sum each cell that has several rows into its first row and delete the others."""
    key = [cells.c[name] for name in CELL]
    split = bind.execute(sa.select(*key).group_by(*key).having(sa.func.count() > 1)).all()
    for cell in split:
        match = sa.and_(*(column == value for column, value in zip(key, cell, strict=True)))
        rows = bind.execute(sa.select(cells.c.id, cells.c.count, cells.c.amount).where(match)).all()
        keep, *drop = rows
        bind.execute(
            cells.update()
            .where(cells.c.id == keep.id)
            .values(
                count=sum(row.count for row in rows),
                amount=sum((row.amount for row in rows), Decimal("0.00")),
            )
        )
        bind.execute(cells.delete().where(cells.c.id.in_([row.id for row in drop])))


def downgrade() -> None:
    with op.batch_alter_table("analytics_daily", schema=None) as batch_op:
        batch_op.drop_index("uq_analytics_daily_cell")
        batch_op.create_index(
            "ix_analytics_daily_lookup", ["tenant_id", "day", "metric"], unique=False
        )
        batch_op.drop_column("agent_key")
