"""Jobs for the worker tests; a worker process imports them by name, so they live in a module."""
from __future__ import annotations


def fail_once(counter_key: str) -> int:
    """Fails on its first run and succeeds on the next: counts its runs in Redis."""
    from core.redis_store import rstore

    runs = rstore.client.incr(counter_key)
    if runs == 1:
        raise RuntimeError("first attempt fails (as WeCom's 'system busy' would)")
    return runs
