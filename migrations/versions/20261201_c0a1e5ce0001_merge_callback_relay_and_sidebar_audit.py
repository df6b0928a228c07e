"""Merge the callback relay and sidebar audit branches (developed side by side).

Revision ID: c0a1e5ce0001
Revises: 5b1e0c7d9a3f, 5b1d3e7c9a40
Create Date: 2026-12-01
"""
from __future__ import annotations

revision = 'c0a1e5ce0001'
down_revision = ('5b1e0c7d9a3f', '5b1d3e7c9a40')
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
