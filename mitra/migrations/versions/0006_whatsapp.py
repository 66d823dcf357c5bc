"""Provider credentials per tenant, and messages that come from outside the app.

Revision ID: 0006
Revises: 0005

`tenant_integrations` holds each tenant's provider settings, secrets sealed with AES-GCM.
Messages gain who sent them (`sender_type`: a WhatsApp customer has no account), the provider's
id (`external_id`, unique per tenant: Meta redelivers webhooks) and channel data (`meta`).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tenant_integrations",
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("secrets", sa.LargeBinary(), nullable=False),
        sa.Column("updated_by", sa.Uuid(), nullable=True),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_tenant_integrations_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["updated_by"],
            ["users.id"],
            name=op.f("fk_tenant_integrations_updated_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenant_integrations")),
        sa.UniqueConstraint("tenant_id", "provider", name="uq_tenant_integrations_provider"),
    )
    with op.batch_alter_table("tenant_integrations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_tenant_integrations_tenant_id"), ["tenant_id"], unique=False
        )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("sender_type", sa.String(length=16), server_default="user", nullable=False)
        )
        batch_op.add_column(sa.Column("external_id", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("meta", sa.JSON(), nullable=True))
        batch_op.create_index("uq_messages_external_id", ["tenant_id", "external_id"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("uq_messages_external_id")
        batch_op.drop_column("meta")
        batch_op.drop_column("external_id")
        batch_op.drop_column("sender_type")
    with op.batch_alter_table("tenant_integrations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tenant_integrations_tenant_id"))
    op.drop_table("tenant_integrations")
