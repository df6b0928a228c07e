"""Tracked links: what a guide sent (content, a coupon, a script's link) and every time the customer opened it.

A conversion is not stored: it is computed from orders (an order by the link's customer within 7 days of an
open), so late-arriving orders and re-matched customers count without any job.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.timeutil import utcnow
from models.base import Base, BigID


class TrackedLink(Base):
    __tablename__ = "tracked_links"
    __table_args__ = (Index("ix_tracked_links_created", "created_at"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)  # secrets.token_urlsafe: unguessable
    guide_id: Mapped[int] = mapped_column(ForeignKey("guides.id"), index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    content_id: Mapped[int | None] = mapped_column(ForeignKey("contents.id", ondelete="SET NULL"), index=True)
    script_id: Mapped[int | None] = mapped_column(ForeignKey("scripts.id", ondelete="SET NULL"), index=True)
    coupon_ref: Mapped[str | None] = mapped_column(String(64))
    target_url: Mapped[str] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)  # = sent

    opens: Mapped[list["LinkOpen"]] = relationship(back_populates="link", order_by="LinkOpen.opened_at")

    @property
    def url(self) -> str:
        """The address the customer gets: PUBLIC_BASE_URL + /c/<token>."""
        from flask import current_app

        return f"{current_app.config['PUBLIC_BASE_URL'].rstrip('/')}/c/{self.token}"


class LinkOpen(Base):
    """One open of a tracked link (repeat opens are each a row)."""

    __tablename__ = "link_opens"
    __table_args__ = (Index("ix_link_opens_link_time", "link_id", "opened_at"),
                      Index("ix_link_opens_customer_time", "customer_id", "opened_at"))

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    link_id: Mapped[int] = mapped_column(BigID, ForeignKey("tracked_links.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    guide_id: Mapped[int] = mapped_column(ForeignKey("guides.id"))
    content_id: Mapped[int | None] = mapped_column(ForeignKey("contents.id", ondelete="SET NULL"))
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    user_agent: Mapped[str | None] = mapped_column(String(300))

    link: Mapped[TrackedLink] = relationship(back_populates="opens")
