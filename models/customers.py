"""Customers with One-ID, their guides, tags and trajectory.

One customer, many identities: a WeCom external_userid, a unionid, a mobile, a member_no, each unique per
kind, so a record from WeCom, the POS or e-commerce lands on the same profile.
"""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import ForeignKey, Index, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.timeutil import utcnow
from models.base import Base, BigID

IDENTITY_KINDS = ("external_userid", "unionid", "mobile", "member_no")
TAG_SOURCES = ("wecom", "guide", "rule", "import")


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    avatar: Mapped[str | None] = mapped_column(String(500))
    gender: Mapped[int] = mapped_column(default=0)  # WeCom: 0 unknown, 1 male, 2 female
    wecom_type: Mapped[int | None]  # 1 WeChat user, 2 WeCom user
    corp_name: Mapped[str | None] = mapped_column(String(100))
    birthday: Mapped[date | None]
    baby_birthday: Mapped[date | None]
    due_date: Mapped[date | None]
    member_level: Mapped[str | None] = mapped_column(String(32))
    points: Mapped[int] = mapped_column(default=0)
    # The guide credited with this customer: the first to add them while that relation lasts,
    # else the longest-standing guide who still follows them (kept by customers.operations).
    binding_guide_id: Mapped[int | None] = mapped_column(ForeignKey("guides.id"), index=True)
    first_added_at: Mapped[datetime | None]
    # Kept from orders so the profile and the daily rules need no aggregate per request.
    last_order_at: Mapped[datetime | None] = mapped_column(index=True)
    order_count: Mapped[int] = mapped_column(default=0)
    total_spend: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=0)
    # Set when the customer's personal information was erased (customers.erasure): the row stays as an
    # anonymous shell so orders, follows and counts keep pointing somewhere.
    erased_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    identities: Mapped[list["CustomerIdentity"]] = relationship(back_populates="customer")
    follows: Mapped[list["Follow"]] = relationship(back_populates="customer")


class CustomerIdentity(Base):
    __tablename__ = "customer_identities"
    __table_args__ = (UniqueConstraint("kind", "value"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    value: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    customer: Mapped[Customer] = relationship(back_populates="identities")


class Follow(Base):
    """A guide follows a customer in WeCom. Ended relations are kept (ended_at set) as history."""

    __tablename__ = "follows"
    # added_at: new customers per period (leaderboards) without scanning every relation
    __table_args__ = (UniqueConstraint("guide_id", "customer_id"), Index("ix_follows_added_at", "added_at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    guide_id: Mapped[int] = mapped_column(ForeignKey("guides.id"), index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    added_at: Mapped[datetime]
    state: Mapped[str | None] = mapped_column(String(64))  # the 联系我 / acquisition-link channel
    remark: Mapped[str | None] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(String(255))
    ended_at: Mapped[datetime | None]
    ended_by: Mapped[str | None] = mapped_column(String(16))  # customer | guide | transfer

    customer: Mapped[Customer] = relationship(back_populates="follows")
    guide: Mapped["Guide"] = relationship()  # noqa: F821


class TagGroup(Base):
    __tablename__ = "tag_groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    wecom_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    order: Mapped[int] = mapped_column(default=0)
    deleted: Mapped[bool] = mapped_column(default=False)

    tags: Mapped[list["Tag"]] = relationship(back_populates="group", order_by="Tag.order")


class Tag(Base):
    __tablename__ = "tags"
    __table_args__ = (UniqueConstraint("group_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("tag_groups.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    wecom_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    order: Mapped[int] = mapped_column(default=0)
    deleted: Mapped[bool] = mapped_column(default=False)

    group: Mapped[TagGroup] = relationship(back_populates="tags")


class CustomerTag(Base):
    __tablename__ = "customer_tags"

    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True)
    tag_id: Mapped[int] = mapped_column(ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True, index=True)
    source: Mapped[str] = mapped_column(String(16), default="wecom")
    guide_id: Mapped[int | None] = mapped_column(ForeignKey("guides.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    tag: Mapped[Tag] = relationship()


class Event(Base):
    """One step of a customer's trajectory. `ref` makes re-delivered or re-imported events idempotent."""

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("type", "ref"),
        Index("ix_events_customer_time", "customer_id", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(40))
    occurred_at: Mapped[datetime]
    channel: Mapped[str | None] = mapped_column(String(20))
    guide_id: Mapped[int | None] = mapped_column(ForeignKey("guides.id"))
    payload: Mapped[dict] = mapped_column(default=dict)
    ref: Mapped[str | None] = mapped_column(String(160))
    note: Mapped[str | None] = mapped_column(Text)
