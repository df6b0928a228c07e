"""Item-to-item co-occurrence, precomputed from the chain's orders by `flask recommend rebuild` (nightly)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, String
from sqlalchemy.orm import Mapped, mapped_column

from core.timeutil import utcnow
from models.base import Base


class ProductPair(Base):
    """Customers who bought `sku` also bought `other_sku` (in the same order or within the window after it).
    Only each SKU's strongest neighbours are kept."""

    __tablename__ = "product_pairs"

    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    other_sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    together: Mapped[int]  # customers who bought both
    score: Mapped[float] = mapped_column(Float)  # together / sqrt(buyers(sku) * buyers(other_sku))
    built_at: Mapped[datetime] = mapped_column(default=utcnow)
