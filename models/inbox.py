"""The durable callback inbox: every accepted WeCom callback, stored before it is acknowledged."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from core.timeutil import utcnow
from models.base import Base, BigID

INBOX_STATES = ("pending", "done", "failed", "ignored")


class CallbackInbox(Base):
    __tablename__ = "callback_inbox"
    __table_args__ = (
        # The relay's work list: stored callbacks not yet handed to the job queue (normally a handful).
        Index("ix_callback_inbox_unqueued", "id", postgresql_where=text("queued_at IS NULL"),
              sqlite_where=text("queued_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    # MsgId for messages; Event + ChangeType + ids + CreateTime for events. WeCom's retries collide here.
    dedup_key: Mapped[str] = mapped_column(String(255), unique=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    msg_type: Mapped[str] = mapped_column(String(32))
    event: Mapped[str | None] = mapped_column(String(64))
    change_type: Mapped[str | None] = mapped_column(String(64))
    payload: Mapped[dict] = mapped_column(default=dict)  # the decrypted XML's fields
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict | None]
    processed_at: Mapped[datetime | None]
    # Set by the relay (bot.relay) once a job for this row is on the queue; NULL = stored, not yet queued.
    queued_at: Mapped[datetime | None]
