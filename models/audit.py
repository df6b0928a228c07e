"""The audit log of administrative acts on personal data (an erasure): who, when, why, which customer.
It never holds the personal data acted on."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from core.timeutil import utcnow
from models.base import Base, BigID

AUDIT_ACTIONS = ("customer_erased",)


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
