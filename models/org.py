"""The chain's organisation: stores and the guides (and managers) who work in them."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.timeutil import utcnow
from models.base import Base

ROLES = ("guide", "manager", "admin")


class Store(Base):
    __tablename__ = "stores"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    city: Mapped[str | None] = mapped_column(String(60))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    guides: Mapped[list["Guide"]] = relationship(back_populates="store")


class Guide(Base):
    """A WeCom member: a guide, a store manager or a head-office admin."""

    __tablename__ = "guides"

    id: Mapped[int] = mapped_column(primary_key=True)
    userid: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(64))
    store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id"), index=True)
    role: Mapped[str] = mapped_column(String(16), default="guide")
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | left
    left_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    store: Mapped[Store | None] = relationship(back_populates="guides")
