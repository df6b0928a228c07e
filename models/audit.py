"""The audit log of administrative acts on personal data (an erasure): who, when, why, which customer.
It never holds the personal data acted on."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from core.timeutil import utcnow
from models.base import Base, BigID


class AuditEntry(Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_customer_at", "customer_id", "at"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    action: Mapped[str] = mapped_column(String(40))
    # Who acted: "guide:<userid>" for an admin through the API, "cli:<os user>" for the command line.
    actor: Mapped[str] = mapped_column(String(100))
    guide_id: Mapped[int | None] = mapped_column(ForeignKey("guides.id"))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="SET NULL"))
    reason: Mapped[str] = mapped_column(String(500))
    details: Mapped[dict] = mapped_column(default=dict)  # what was done, as counts of rows: never the data


class ErasureCleanup(Base):
    """Redis clean-up an erasure still owes: the customer's touch counters, the chat-bot's remembered
    questions quoting them, the learned pairs of `terms` (their name, mobile and ids, rebuilt from the sends
    that remain). Written in the erasure's transaction, done by a job after the commit and deleted then, so
    these values live only until Redis is clean; while Redis is away the row waits and is retried."""
    __tablename__ = "erasure_cleanups"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    terms: Mapped[list] = mapped_column(default=list)
    due_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)  # next attempt
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(String(2000))
