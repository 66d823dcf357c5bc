"""Joins the two heads main got when payments (0010) and the assistant (0012) both followed 0009.

Revision ID: 0013
Revises: 0010, 0012
"""

from __future__ import annotations

revision = "0013"
down_revision = ("0010", "0012")
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing to change: the two branches touch different tables."""


def downgrade() -> None:
    """Nothing to undo."""
