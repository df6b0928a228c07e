"""Merge the commerce branch (coupons, commission, attribution) into the main line.

Revision ID: c0a1e5ce0002
Revises: c0a1e5ce0001, 714cb07cef85
Create Date: 2026-12-01
"""
from __future__ import annotations

revision = 'c0a1e5ce0002'
down_revision = ('c0a1e5ce0001', '714cb07cef85')
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
