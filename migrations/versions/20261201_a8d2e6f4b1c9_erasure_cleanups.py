"""Erasure: the erasure_cleanups table (Redis clean-up an erasure still owes, retried until done).

Revision ID: a8d2e6f4b1c9
Revises: f3a9c1d7e2b8
Create Date: 2026-12-01
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import models.base

revision = 'a8d2e6f4b1c9'
down_revision = 'f3a9c1d7e2b8'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "erasure_cleanups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("terms", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False),
        sa.Column("due_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=2000), nullable=True),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"],
                                name=op.f("fk_erasure_cleanups_customer_id_customers"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erasure_cleanups")),
    )
    op.create_index(op.f("ix_erasure_cleanups_customer_id"), "erasure_cleanups", ["customer_id"])
    op.create_index(op.f("ix_erasure_cleanups_due_at"), "erasure_cleanups", ["due_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_erasure_cleanups_due_at"), table_name="erasure_cleanups")
    op.drop_index(op.f("ix_erasure_cleanups_customer_id"), table_name="erasure_cleanups")
    op.drop_table("erasure_cleanups")
