"""The demo chain carries tracked links, browsing and script sends, so the reports show something."""
from __future__ import annotations

from sqlalchemy import func, select

from core.db import db
from customers.operations import find_customer
from models import Customer, Event, LinkOpen, ScriptSend, TrackedLink
from recommend import operations as recommend
from tracking import funnels


def test_demo_seed_gives_funnels_script_stats_and_browsing(app, runner):
    out = runner.invoke(args=["demo", "seed"])
    assert out.exit_code == 0, out.output
    assert "tracked_link" in out.output
    counts = [db.session.scalar(select(func.count()).select_from(m)) for m in (TrackedLink, LinkOpen, ScriptSend)]
    rows = funnels.funnel("content")
    assert sum(r["sent"] for r in rows) == counts[0] == 90
    assert 0 < sum(r["converted"] for r in rows) < sum(r["opened"] for r in rows) < 90
    stats = funnels.script_stats()
    assert stats[0]["converted"] > 0 and sum(r["sends"] for r in stats) == counts[2] == 120
    viewers = db.session.scalars(select(Event.customer_id).where(Event.type == "product_view").distinct()).all()
    nudged = [cid for cid in viewers if any(r["source"] == "browsing" and r["category"] == "推车"
                                            for r in recommend.recommend(db.session.get(Customer, cid)))]
    assert len(viewers) == 4 and len(nudged) >= 2  # three or more high-priced views: a mid-priced stroller

    again = runner.invoke(args=["demo", "seed"])
    assert again.exit_code == 0 and "tracked_link" not in again.output
    assert [db.session.scalar(select(func.count()).select_from(m))
            for m in (TrackedLink, LinkOpen, ScriptSend)] == counts
    assert find_customer("external_userid", "wmDemo0001") is not None
