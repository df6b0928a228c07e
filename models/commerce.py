"""Products and orders from every channel (POS, e-commerce, import)."""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import ForeignKey, Index, Numeric, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.timeutil import utcnow
from models.base import Base, BigID


class Product(Base):
    __tablename__ = "products"

    id: Mapped[int] = mapped_column(primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(64), index=True)
    price: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    attributes: Mapped[dict] = mapped_column(default=dict)  # e.g. {"days_of_use": 7, "stage": 1}
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (Index("ix_orders_customer_paid", "customer_id", "paid_at"),
                      Index("ix_orders_unmatched", "id", postgresql_where=text("customer_id IS NULL"),
                            sqlite_where=text("customer_id IS NULL")),
                      # A customer gaining an identity finds the unmatched orders carrying it (PostgreSQL: @>).
                      Index("ix_orders_unmatched_keys", "customer_keys", postgresql_using="gin",
                            postgresql_ops={"customer_keys": "jsonb_path_ops"},
                            postgresql_where=text("customer_id IS NULL"), sqlite_where=text("customer_id IS NULL")))

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    order_no: Mapped[str] = mapped_column(String(64), unique=True)
    channel: Mapped[str] = mapped_column(String(20))  # pos | ecommerce | miniprogram | import …
    store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id"))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="SET NULL"))
    guide_id: Mapped[int | None] = mapped_column(ForeignKey("guides.id"), index=True)  # credited guide
    paid_at: Mapped[datetime] = mapped_column(index=True)
    amount: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    # The identity keys the order arrived with, so an unmatched order can be matched later.
    customer_keys: Mapped[dict] = mapped_column(default=dict)
    # How guide_id was decided: binding | last_touch | none (no guide served the customer at paid time).
    attribution: Mapped[str | None] = mapped_column(String(16))
    commission: Mapped[Decimal] = mapped_column(Numeric(12, 2), default=0)
    # What is wrong with the order, kept rather than dropped: unmatched_customer, unknown_sku, bad_coupon.
    flags: Mapped[list] = mapped_column(default=list)
    coupon_codes: Mapped[list] = mapped_column(default=list)
    # The answer the ingest API gave the first time, repeated for a duplicate order_no.
    receipt: Mapped[dict | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    lines: Mapped[list["OrderLine"]] = relationship(
        back_populates="order", cascade="all, delete-orphan", order_by="OrderLine.line_no"
    )


class OrderLine(Base):
    __tablename__ = "order_lines"
    __table_args__ = (UniqueConstraint("order_id", "line_no"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    order_id: Mapped[int] = mapped_column(BigID, ForeignKey("orders.id", ondelete="CASCADE"))
    line_no: Mapped[int]
    sku: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(64))
    qty: Mapped[int]
    price: Mapped[Decimal] = mapped_column(Numeric(12, 2))

    order: Mapped[Order] = relationship(back_populates="lines")


COUPON_KINDS = ("amount_off", "percent_off", "gift")
COUPON_STATES = ("issued", "redeemed", "expired")


class CouponTemplate(Base):
    """What a coupon is worth, how many exist and who may get one; imported by operations (coupons import)."""

    __tablename__ = "coupon_templates"

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))  # amount_off | percent_off | gift
    amount: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))  # amount_off: money off
    threshold: Mapped[Decimal] = mapped_column(Numeric(12, 2), default=0)  # minimum spend (0: none)
    percent: Mapped[int | None]  # percent_off: 10 = 10% off (九折)
    gift: Mapped[str | None] = mapped_column(String(200))  # gift: what the customer receives
    total_stock: Mapped[int | None]  # None: unlimited
    issued_count: Mapped[int] = mapped_column(default=0)  # the stock counter, raised under a row lock
    per_customer_limit: Mapped[int] = mapped_column(default=1)
    valid_from: Mapped[date | None]  # fixed window (local dates, inclusive) …
    valid_to: Mapped[date | None]
    valid_days: Mapped[int | None]  # … or valid for N days from the day of issue
    categories: Mapped[list] = mapped_column(default=list)  # applicable product categories; empty: all
    description: Mapped[str] = mapped_column(String(500), default="")
    enabled: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Coupon(Base):
    """One coupon issued to one customer by one guide."""

    __tablename__ = "coupons"
    __table_args__ = (Index("ix_coupons_customer_template", "customer_id", "template_id"),
                      Index("ix_coupons_status_expires", "status", "expires_at"))

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    template_id: Mapped[int] = mapped_column(ForeignKey("coupon_templates.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    guide_id: Mapped[int | None] = mapped_column(ForeignKey("guides.id"), index=True)  # who issued it
    status: Mapped[str] = mapped_column(String(16), default="issued")  # issued | redeemed | expired
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]  # the first instant it is no longer valid
    redeemed_at: Mapped[datetime | None]
    order_id: Mapped[int | None] = mapped_column(BigID, ForeignKey("orders.id", ondelete="SET NULL"))

    template: Mapped[CouponTemplate] = relationship()


class CouponEvent(Base):
    """The audit trail: every state change of a coupon (issued, redeemed, expired) and of a template
    (created, updated by an import)."""

    __tablename__ = "coupon_events"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    template_id: Mapped[int] = mapped_column(ForeignKey("coupon_templates.id"), index=True)
    coupon_id: Mapped[int | None] = mapped_column(BigID, ForeignKey("coupons.id", ondelete="CASCADE"), index=True)
    type: Mapped[str] = mapped_column(String(20))  # template_created | template_updated | issued | redeemed | expired
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str | None] = mapped_column(String(16))
    guide_id: Mapped[int | None] = mapped_column(ForeignKey("guides.id"))
    order_id: Mapped[int | None] = mapped_column(BigID)
    details: Mapped[dict] = mapped_column(default=dict)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class CommissionRate(Base):
    """Commission per product category (`*` is the rate of every category not listed)."""

    __tablename__ = "commission_rates"

    id: Mapped[int] = mapped_column(primary_key=True)
    category: Mapped[str] = mapped_column(String(64), unique=True)
    rate: Mapped[Decimal] = mapped_column(Numeric(6, 4))  # 0.0300 = 3 %
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
