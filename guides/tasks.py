"""Periodic job functions for the scheduler (scheduler/jobs.py): see docs/tracking.md."""
from __future__ import annotations

from datetime import date


def poll_transfers(D: date | None = None) -> dict:
    """Hourly: settle the waiting resigned-customer transfers from WeCom's results. Idempotent; the scheduler
    commits."""
    from guides.operations import poll_transfers as poll

    return poll()
