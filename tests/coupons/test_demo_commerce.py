"""The embedded default's demo chain shows the commerce side: coupon templates, coupons given out (some
expiring, some used), commission rates and orders priced with them."""
from __future__ import annotations

from sqlalchemy import func, select

from core.db import db
from core.timeutil import local_today
from models import CommissionRate, Coupon, CouponTemplate, Order, RedDot
from tasks import operations as task_ops


def test_demo_seed_brings_coupons_and_commission(app, runner):
    for _ in range(2):  # a second seed adds nothing
        result = runner.invoke(args=["demo", "seed"])
        assert result.exit_code == 0, result.output
        db.session.remove()
    assert db.session.scalar(select(func.count()).select_from(CouponTemplate)) == 5
    assert db.session.scalar(select(func.count()).select_from(CommissionRate)) == 6
    statuses = dict(db.session.execute(select(Coupon.status, func.count()).group_by(Coupon.status)).all())
    assert sum(statuses.values()) == 16 and statuses.get("redeemed", 0) >= 1
    credited = db.session.scalar(select(func.count()).select_from(Order).where(Order.guide_id.is_not(None)))
    priced = db.session.scalar(select(func.count()).select_from(Order).where(Order.commission > 0))
    assert credited > 500 and priced == credited
    task_ops.generate(local_today())
    expiring = db.session.scalar(select(func.count()).select_from(RedDot).where(RedDot.rule == "coupon_expiring"))
    assert expiring >= 3
    rows = runner.invoke(args=["report", "leaderboard", "--period", "month", "--json"])
    assert rows.exit_code == 0
