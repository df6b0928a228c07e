"""Periodic job functions for the scheduler (scheduler/jobs.py): see docs/tracking.md."""
from __future__ import annotations

from datetime import date


def rebuild_pairs(D: date | None = None) -> dict:
    """Nightly: recompute products bought together from the orders. Idempotent (replaces the table); the
    scheduler commits."""
    from recommend.operations import rebuild_pairs as rebuild

    return rebuild()
