"""Daily red-dot tasks, the touches that protect customers from harassment, SOP playbooks, the pushes to
guides and the scheduler's record of its runs."""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import ForeignKey, Index, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.timeutil import utcnow
from models.base import Base, BigID

TASK_STATES = ("open", "done", "skipped")
TOUCH_KINDS = ("marketing", "service")


class RedDot(Base):
    """One task for one guide on one day: contact this customer, for this reason, with this script."""

    __tablename__ = "red_dots"
    __table_args__ = (
        UniqueConstraint("guide_id", "customer_id", "rule", "task_date"),
        Index("ix_red_dots_date_guide", "task_date", "guide_id", "rank"),
        Index("ix_red_dots_customer_date", "customer_id", "task_date"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    guide_id: Mapped[int] = mapped_column(ForeignKey("guides.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    rule: Mapped[str] = mapped_column(String(64))  # birthday, dormant, … or sop:<playbook key>
    task_date: Mapped[date]
    priority: Mapped[int] = mapped_column(default=50)
    value: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=0)  # the customer's spend, for ranking
    rank: Mapped[int | None]  # 1 = first in the guide's list for the day
    visible: Mapped[bool] = mapped_column(default=True)  # within the guide's daily cap; the rest is "more"
    reason: Mapped[str] = mapped_column(String(200))
    script_external_id: Mapped[str | None] = mapped_column(String(64))
    content_external_id: Mapped[str | None] = mapped_column(String(64))
    coupon_ref: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="open")
    skip_reason: Mapped[str | None] = mapped_column(String(200))
    done_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Touch(Base):
    """A message that reached a customer. Marketing touches count against the customer's caps across all
    guides; service replies are recorded but never blocked."""

    __tablename__ = "touches"
    __table_args__ = (Index("ix_touches_customer_at", "customer_id", "at"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    guide_id: Mapped[int | None] = mapped_column(ForeignKey("guides.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # marketing | service
    channel: Mapped[str] = mapped_column(String(20))  # script, content, coupon, task, mass, …
    ref: Mapped[str | None] = mapped_column(String(100))
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class Playbook(Base):
    """An SOP journey for a segment: steps on days after the customer was added, or on fixed dates."""

    __tablename__ = "playbooks"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    # {"tags": [...], "baby_stages": [...], "lifecycle": [...]}; empty means every customer.
    segment: Mapped[dict] = mapped_column(default=dict)
    # [{"day": 3, "title", "script"?, "content"?, "coupon"?, "kind"?}] or [{"date": "2026-11-01", "phase"?, …}]
    steps: Mapped[list] = mapped_column(default=list)
    enabled: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class GuidePush(Base):
    """A push to a guide (the morning brief, the red dots, the evening ranking): one per guide, kind and day,
    so a re-run never pushes twice; failures are kept with their reason."""

    __tablename__ = "guide_pushes"
    __table_args__ = (UniqueConstraint("guide_id", "kind", "push_date"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    guide_id: Mapped[int] = mapped_column(ForeignKey("guides.id"))
    kind: Mapped[str] = mapped_column(String(20))
    push_date: Mapped[date] = mapped_column(index=True)
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued | sent | failed
    attempts: Mapped[int] = mapped_column(default=0)
    title: Mapped[str | None] = mapped_column(String(128))
    body: Mapped[str | None] = mapped_column(Text)
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class JobRun(Base):
    """One scheduled slot of a periodic job: the catch-up at start-up looks here for what was missed."""

    __tablename__ = "job_runs"
    __table_args__ = (UniqueConstraint("job", "slot"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job: Mapped[str] = mapped_column(String(40))
    slot: Mapped[datetime]  # the scheduled time this run stands for
    status: Mapped[str] = mapped_column(String(16), default="running")  # running | done | failed
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    result: Mapped[dict | None]
    error: Mapped[str | None] = mapped_column(Text)
