"""What the chat sidebar keeps: the audit log of who looked at which customer's profile, and when."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from core.timeutil import utcnow
from models.base import Base, BigID


class ProfileView(Base):
    """One view of a customer's profile in the sidebar (the first screen or the 客户 tab)."""

    __tablename__ = "profile_views"
    __table_args__ = (
        Index("ix_profile_views_customer_at", "customer_id", "viewed_at"),
        Index("ix_profile_views_guide_at", "guide_id", "viewed_at"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    guide_id: Mapped[int] = mapped_column(ForeignKey("guides.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    viewed_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    entry: Mapped[str | None] = mapped_column(String(32))  # WeCom getContext entry, or "demo" / "api"
    ip: Mapped[str | None] = mapped_column(String(64))
