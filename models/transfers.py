"""Staff departure (离职继承): one row per customer handed from a departing guide to a receiver through
WeCom's resigned-customer transfer. History: rows are never deleted."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from core.timeutil import utcnow
from models.base import Base, BigID

# waiting: WeCom accepted the request (takeover completes after 24 h); done; refused (customer refused);
# receiver_full (the receiver is at the customer cap); no_record; failed (WeCom refused the request itself);
# erased (the customer's personal data was erased while it waited: WeCom will never report on the redacted id).
TRANSFER_STATES = ("waiting", "done", "refused", "receiver_full", "no_record", "failed", "erased")
WECOM_RESULT_STATES = {1: "done", 2: "waiting", 3: "refused", 4: "receiver_full", 5: "no_record"}


class CustomerTransfer(Base):
    __tablename__ = "customer_transfers"
    __table_args__ = (Index("ix_customer_transfers_status", "status", "requested_at"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    handover_guide_id: Mapped[int] = mapped_column(ForeignKey("guides.id"), index=True)
    takeover_guide_id: Mapped[int] = mapped_column(ForeignKey("guides.id"), index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    external_userid: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default="waiting")
    errcode: Mapped[int | None]
    fail_reason: Mapped[str | None] = mapped_column(String(64))
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    settled_at: Mapped[datetime | None]
    takeover_at: Mapped[datetime | None]
