"""Index follows.added_at: the leaderboards count new customers per day, week and month.

Revision ID: d41c7a2e5b10
Revises: c0a1e5ce0003
Create Date: 2026-12-01
"""
from __future__ import annotations

from alembic import op

revision = 'd41c7a2e5b10'
down_revision = 'c0a1e5ce0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_follows_added_at", "follows", ["added_at"])


def downgrade() -> None:
    op.drop_index("ix_follows_added_at", table_name="follows")
