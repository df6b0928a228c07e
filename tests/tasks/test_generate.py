"""The red-dot rules for a day D: who each guide should contact, why, and what is left out."""
from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from core.db import db
from models import Follow, RedDot
from tasks import operations as ops
from tasks.settings import RuleSettingsError, load_rule_settings
from tests.tasks import factories as f
from tests.tasks.factories import D, at


def tasks_by_rule():
    out = {}
    for t in db.session.scalars(select(RedDot).where(RedDot.task_date == D)):
        out.setdefault(t.rule, []).append(t)
    return out


@pytest.fixture
def rules(app):
    """Override rule settings for one test."""
    def use(**overrides):
        app.extensions["task_rules"] = load_rule_settings(overrides)
    yield use
    app.extensions.pop("task_rules", None)


def test_each_rule_finds_its_customers_with_a_plain_reason(app):
    g = f.guide("guide01")
    manager = f.guide("boss", role="manager")
    baby = f.customer(g, baby_birthday=date(2025, 6, 19))             # turns 1 on Friday
    own = f.customer(g, birthday=date(1990, 6, 15))                    # birthday today
    dormant = f.customer(g)
    f.order(dormant, at(D - timedelta(days=45)), (f.product(), 1))
    dormant_again = f.customer(g)
    f.order(dormant_again, at(D - timedelta(days=30)), (f.product(), 1))
    bought = f.customer(g)
    f.order(bought, at(D - timedelta(days=3), 21), (f.product("DP-S", "纸尿裤S码", "纸尿裤", "99"), 1))
    diapers = f.product("DP-M", "纸尿裤M码", "纸尿裤", "129", days_of_use=10)
    refill = f.customer(g)
    f.order(refill, at(D - timedelta(days=17)), (diapers, 2))          # 2 × 10 days − 3 = 17
    refilled = f.customer(g)
    f.order(refilled, at(D - timedelta(days=17)), (diapers, 2))
    f.order(refilled, at(D - timedelta(days=5)), (diapers, 1))          # bought again since: no reminder
    new = f.customer(g, added=D - timedelta(days=1))
    lost = f.customer(g)
    db.session.execute(Follow.__table__.update().where(Follow.customer_id == lost.id).values(
        ended_at=at(D - timedelta(days=1), 15), ended_by="customer"))
    db.session.commit()

    result = ops.generate(D)
    found = tasks_by_rule()
    assert {t.customer_id: t.reason for t in found["birthday"]} == {
        baby.id: "宝宝本周五满1岁", own.id: "今天是顾客生日"}
    assert [(t.customer_id, t.reason) for t in found["dormant"]] == [(dormant_again.id, "30天未购买")]
    assert [(t.customer_id, t.reason) for t in found["post_purchase"]] == [
        (bought.id, "3天前购买了纸尿裤S码，回访使用感受")]
    assert [(t.customer_id, t.reason) for t in found["replenish"]] == [(refill.id, "纸尿裤M码预计3天后用完，提醒回购")]
    assert [t.customer_id for t in found["new_contact"]] == [new.id]
    [loss] = found["lost_contact"]
    assert loss.guide_id == manager.id and loss.customer_id == lost.id and "删除了导购guide01" in loss.reason
    assert all(t.guide_id == g.id for r, ts in found.items() if r != "lost_contact" for t in ts)
    assert result["total_created"] == 7


def test_dormant_repeats_every_30_days_and_waits_after_outreach(app):
    g = f.guide()
    sixty = f.customer(g)
    f.order(sixty, at(D - timedelta(days=60)), (f.product(), 1))
    contacted = f.customer(g)
    f.order(contacted, at(D - timedelta(days=30)), (f.product(), 1))
    f.touch(contacted, g, at(D - timedelta(days=10)), kind="service")
    never_bought = f.customer(g, added=D - timedelta(days=90))
    db.session.commit()
    ops.generate(D)
    reasons = {t.customer_id: t.reason for t in tasks_by_rule()["dormant"]}
    assert reasons == {sixty.id: "60天未购买", never_bought.id: "添加90天还未购买"}


def test_marketing_rules_skip_do_not_disturb_and_capped_customers(app):
    g = f.guide()
    quiet = f.customer(g, birthday=date(1990, 6, 16))
    f.tag(quiet, "免打扰")
    capped = f.customer(g, birthday=date(1990, 6, 16))
    for days in (1, 2, 3):
        f.touch(capped, g, at(D - timedelta(days=days)))
    fine = f.customer(g, birthday=date(1990, 6, 16))
    f.touch(fine, g, at(D - timedelta(days=8)))  # outside the 7-day window
    bought = f.customer(g)  # a service rule (post-purchase care) ignores the caps
    f.tag(bought, "免打扰")
    f.order(bought, at(D - timedelta(days=3)), (f.product(), 1))
    db.session.commit()
    ops.generate(D)
    found = tasks_by_rule()
    assert [t.customer_id for t in found["birthday"]] == [fine.id]
    assert [t.customer_id for t in found["post_purchase"]] == [bought.id]


def test_generation_is_idempotent_ranked_and_capped(app, rules):
    rules(daily_cap=2)
    g = f.guide()
    rich = f.customer(g, birthday=date(1990, 6, 18), total_spend=5000)
    poor = f.customer(g, birthday=date(1990, 6, 18), total_spend=10)
    new = f.customer(g, added=D - timedelta(days=1))
    db.session.commit()
    first = ops.generate(D)
    second = ops.generate(D)
    assert first["total_created"] == 3 and second["total_created"] == 0
    assert db.session.scalar(select(func.count()).select_from(RedDot)) == 3
    listed = ops.list_tasks(D, guide=g)
    # birthdays (90) before a new contact (85); among birthdays the bigger spender first; over the cap: "more"
    assert [(t["external_userid"], t["rank"], t["more"]) for t in listed] == [
        (f.external_userid(rich), 1, False), (f.external_userid(poor), 2, False), (f.external_userid(new), 3, True)]


def test_cli_generate_and_list(app, runner):
    g = f.guide("guide01")
    f.customer(g, birthday=date(1990, 6, 16))
    db.session.commit()
    result = runner.invoke(args=["tasks", "generate", "--date", D.isoformat()])
    assert result.exit_code == 0, result.output
    assert "1 new task(s)" in result.output and "生日 (birthday): 1" in result.output
    result = runner.invoke(args=["tasks", "list", "--date", D.isoformat(), "--guide", "guide01", "--json"])
    row = json.loads(result.output.strip())
    assert {k: row[k] for k in ("guide", "rule", "reason", "status")} == {
        "guide": "guide01", "rule": "birthday", "reason": "明天是顾客生日", "status": "open"}
    assert isinstance(row["priority"], int) and row["external_userid"].startswith("wmT")


def test_bad_input_names_the_problem_and_writes_nothing(app, runner):
    f.guide("guide01")
    db.session.commit()
    result = runner.invoke(args=["tasks", "generate", "--date", "2026-13-01"])
    assert result.exit_code == 2 and "'2026-13-01' is not a date" in result.output
    result = runner.invoke(args=["tasks", "list", "--guide", "nobody"])
    assert result.exit_code == 2 and "unknown guide: 'nobody'" in result.output
    with pytest.raises(RuleSettingsError, match=r"dormant.days = 3 is out of range \(7–365\)"):
        load_rule_settings({"dormant": {"days": 3}})
    with pytest.raises(RuleSettingsError, match="birthday.weeks is not a parameter of birthday"):
        load_rule_settings({"birthday": {"weeks": 1}})
    with pytest.raises(RuleSettingsError, match="quiet_hours must look like"):
        load_rule_settings({"quiet_hours": "late"})
    assert db.session.scalar(select(func.count()).select_from(RedDot)) == 0


def test_a_bad_rule_setting_stops_start_up(app):
    from app import create_app
    from config import ConfigError
    from tests.conftest import TEST_SETTINGS

    with pytest.raises(ConfigError, match="TASK_RULES: daily_cap = 0 is out of range"):
        create_app({**TEST_SETTINGS, "TASK_RULES": '{"daily_cap": 0}'})
