"""The knowledge base's FTS5 index (SQLite) keeps Indic vowel signs inside words.

FTS5's unicode61 tokenizer treats combining marks as separators by default, so "नॉमिनी" was
indexed as न, म, न and a search for "केस" (case) matched an article about "कैसे" (how): both
were the letters क and स. With marks (M*) among the token characters a Devanagari word is one
token, as PostgreSQL's parser already makes it; Latin diacritics are still folded. The table is
rebuilt from the articles themselves. PostgreSQL's index is unchanged.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

WITH_MARKS = "unicode61 remove_diacritics 2 categories ''L* N* Co M*''"
WITHOUT_MARKS = "unicode61 remove_diacritics 2"


def upgrade() -> None:
    _rebuild(WITH_MARKS)


def downgrade() -> None:
    _rebuild(WITHOUT_MARKS)


def _rebuild(tokenizer: str) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute("DROP TABLE IF EXISTS kb_articles_fts")
    op.execute(
        "CREATE VIRTUAL TABLE kb_articles_fts USING fts5("
        "article_id UNINDEXED, tenant_id UNINDEXED, question, answer, tags, "
        f"tokenize = '{tokenizer}')"
    )
    op.execute(
        "INSERT INTO kb_articles_fts (article_id, tenant_id, question, answer, tags) "
        "SELECT id, tenant_id, question, answer, coalesce(tags_text, '') FROM kb_articles"
    )
