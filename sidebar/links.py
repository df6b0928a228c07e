"""The link a customer gets when a guide sends content from the sidebar: the service's tracked link
(`/c/<token>`, see tracking/), so opens and the orders that follow are credited to the guide and the content.
None when the content has no http(s) link. Callers depend only on this signature."""
from __future__ import annotations

from tracking.operations import tracked_url

__all__ = ["tracked_url"]
