"""Index the identity keys of unmatched orders (GIN, PostgreSQL), so a customer gaining an identity finds them.

Revision ID: e7b3f19c2d44
Revises: d41c7a2e5b10
Create Date: 2026-12-01
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'e7b3f19c2d44'
down_revision = 'd41c7a2e5b10'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.create_index("ix_orders_unmatched_keys", "orders", ["customer_keys"], postgresql_using="gin",
                        postgresql_ops={"customer_keys": "jsonb_path_ops"},
                        postgresql_where=sa.text("customer_id IS NULL"))
    else:  # SQLite: what the model declares; the query there reads the key with ->> anyway
        op.create_index("ix_orders_unmatched_keys", "orders", ["customer_keys"],
                        sqlite_where=sa.text("customer_id IS NULL"))


def downgrade() -> None:
    op.drop_index("ix_orders_unmatched_keys", table_name="orders")
