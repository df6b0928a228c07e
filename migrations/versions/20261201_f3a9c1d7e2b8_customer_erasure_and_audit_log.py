"""Personal-data erasure: customers.erased_at (the anonymous shell's flag) and the audit_log table.

Revision ID: f3a9c1d7e2b8
Revises: e7b3f19c2d44
Create Date: 2026-12-01
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import models.base

revision = 'f3a9c1d7e2b8'
down_revision = 'e7b3f19c2d44'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("customers") as batch:
        batch.add_column(sa.Column("erased_at", models.base.UTCDateTime(timezone=True), nullable=True))
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("guide_id", sa.Integer(), nullable=True),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("details", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False),
        sa.ForeignKeyConstraint(["guide_id"], ["guides.id"], name=op.f("fk_audit_log_guide_id_guides")),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], name=op.f("fk_audit_log_customer_id_customers"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index(op.f("ix_audit_log_at"), "audit_log", ["at"])
    op.create_index("ix_audit_log_customer_at", "audit_log", ["customer_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_audit_log_customer_at", table_name="audit_log")
    op.drop_index(op.f("ix_audit_log_at"), table_name="audit_log")
    op.drop_table("audit_log")
    with op.batch_alter_table("customers") as batch:
        batch.drop_column("erased_at")
