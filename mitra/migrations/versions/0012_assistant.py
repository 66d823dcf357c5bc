"""The assistant: conversation modes, callback requests, the knowledge base and its full-text
index (FTS5 on SQLite, a GIN index over a tsvector expression on PostgreSQL), LLM token usage.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

# The same expression `mitra.assistant.kb` searches with, or PostgreSQL would not use the index.
# 'simple': no stemming, which is what Hindi (no PostgreSQL dictionary) and English share.
TSVECTOR = "to_tsvector('simple', question || ' ' || answer || ' ' || coalesce(tags_text, ''))"


def _audit() -> list[sa.Column[object]]:
    return [
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    ]


def upgrade() -> None:
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("mode", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("mode_changed_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "kb_articles",
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("intent", sa.String(length=32), nullable=True),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("tags_text", sa.Text(), nullable=True),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("updated_by", sa.Uuid(), nullable=True),
        *_audit(),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_kb_articles_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["updated_by"], ["users.id"], name=op.f("fk_kb_articles_updated_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_kb_articles_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kb_articles")),
    )  # fmt: skip
    with op.batch_alter_table("kb_articles", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_kb_articles_tenant_id"), ["tenant_id"], unique=False)
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute(f"CREATE INDEX ix_kb_articles_search ON kb_articles USING gin ({TSVECTOR})")
    else:
        op.execute(
            "CREATE VIRTUAL TABLE kb_articles_fts USING fts5("
            "article_id UNINDEXED, tenant_id UNINDEXED, question, answer, tags, "
            "tokenize = 'unicode61 remove_diacritics 2')"
        )
    op.create_table(
        "callback_requests",
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=True),
        sa.Column("agent_id", sa.Uuid(), nullable=True),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("last_messages", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("done_by", sa.Uuid(), nullable=True),
        *_audit(),
        sa.ForeignKeyConstraint(
            ["conversation_id"], ["conversations.id"],
            name=op.f("fk_callback_requests_conversation_id_conversations"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"],
            name=op.f("fk_callback_requests_customer_id_customers"), ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["users.id"], name=op.f("fk_callback_requests_agent_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["done_by"], ["users.id"], name=op.f("fk_callback_requests_done_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_callback_requests_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_callback_requests")),
    )  # fmt: skip
    with op.batch_alter_table("callback_requests", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_callback_requests_tenant_id"), ["tenant_id"], unique=False
        )
        batch_op.create_index(
            "ix_callback_requests_agent_status", ["tenant_id", "agent_id", "status"], unique=False
        )
    op.create_table(
        "assistant_usage",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=False),
        *_audit(),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_assistant_usage_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assistant_usage")),
        sa.UniqueConstraint("tenant_id", "day", name="uq_assistant_usage_day"),
    )  # fmt: skip
    with op.batch_alter_table("assistant_usage", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_assistant_usage_tenant_id"), ["tenant_id"], unique=False
        )

    op.create_table(
        "assistant_settings",
        sa.Column("default_mode", sa.String(length=8), nullable=True),
        sa.Column("phrases", sa.JSON(), nullable=False),
        sa.Column("updated_by", sa.Uuid(), nullable=True),
        *_audit(),
        sa.ForeignKeyConstraint(
            ["updated_by"], ["users.id"], name=op.f("fk_assistant_settings_updated_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_assistant_settings_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assistant_settings")),
        sa.UniqueConstraint("tenant_id", name="uq_assistant_settings_tenant"),
    )  # fmt: skip
    with op.batch_alter_table("assistant_settings", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_assistant_settings_tenant_id"), ["tenant_id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("assistant_settings")
    op.drop_table("assistant_usage")
    op.drop_table("callback_requests")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_kb_articles_search")
    else:
        op.execute("DROP TABLE IF EXISTS kb_articles_fts")
    op.drop_table("kb_articles")
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_column("mode_changed_at")
        batch_op.drop_column("mode")
