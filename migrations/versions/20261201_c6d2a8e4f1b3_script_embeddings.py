"""Scripts keep their sentence vector (the suggestion engine's semantic channel, knowledge/semantic.py).

Existing scripts get theirs from `flask --app app knowledge embed` (README, Deploying); until then they are
found by their words only.

Revision ID: c6d2a8e4f1b3
Revises: b5e1d9a3c7f2
Create Date: 2026-12-01
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'c6d2a8e4f1b3'
down_revision = 'b5e1d9a3c7f2'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("scripts") as batch:
        batch.add_column(sa.Column("embedding", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("embedding_key", sa.String(length=40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("scripts") as batch:
        batch.drop_column("embedding_key")
        batch.drop_column("embedding")
