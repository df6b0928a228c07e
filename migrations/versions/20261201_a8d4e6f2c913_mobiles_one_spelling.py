"""Stored mobiles in one spelling (imports.records.identity_value): "+86 139-8765-4321" becomes "13987654321", in
customer identities and in the keys of orders still waiting for their customer, so the two meet. A mobile whose
one spelling another customer already holds is left as it was (the erasure lookup still finds it by its digits).

Revision ID: a8d4e6f2c913
Revises: c6d2a8e4f1b3
Create Date: 2026-12-01
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from imports.records import identity_value
from models.base import JSONType

revision = 'a8d4e6f2c913'
down_revision = 'c6d2a8e4f1b3'
branch_labels = None
depends_on = None


def upgrade() -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT id, value FROM customer_identities WHERE kind = 'mobile'")).all()
    taken = {value for _, value in rows}
    for row_id, value in rows:
        one = identity_value("mobile", value)
        if one != value and one not in taken:
            conn.execute(sa.text("UPDATE customer_identities SET value = :v WHERE id = :id"), {"v": one, "id": row_id})
            taken.add(one)
    orders = sa.table("orders", sa.column("id", sa.Integer), sa.column("customer_id", sa.Integer),
                      sa.column("customer_keys", JSONType))
    pending = conn.execute(sa.select(orders.c.id, orders.c.customer_keys).where(orders.c.customer_id.is_(None))).all()
    for order_id, keys in pending:
        if isinstance(keys, dict) and isinstance(keys.get("mobile"), str):
            one = identity_value("mobile", keys["mobile"])
            if one != keys["mobile"]:
                conn.execute(orders.update().where(orders.c.id == order_id)
                             .values(customer_keys={**keys, "mobile": one}))


def downgrade() -> None:
    pass  # the old spellings are not kept; the one spelling is as good a key
