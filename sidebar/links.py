"""The link a customer gets when a guide sends content from the sidebar.

For now the content's own URL; the tracking issue replaces the body with
`tracking.operations.create_tracked_link(guide, customer, content=content).url`, so opens and orders are
attributed to the guide. Callers depend only on this signature.
"""
from __future__ import annotations


def tracked_url(guide, customer, content) -> str | None:
    return content.url
