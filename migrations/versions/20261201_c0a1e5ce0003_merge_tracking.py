"""Merge the tracking branch (tracked links, product pairs, customer transfers) into the main line.

Revision ID: c0a1e5ce0003
Revises: c0a1e5ce0002, 8fa23eeb1872
Create Date: 2026-12-01
"""
from __future__ import annotations

revision = 'c0a1e5ce0003'
down_revision = ('c0a1e5ce0002', '8fa23eeb1872')
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
