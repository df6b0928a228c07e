"""Commission rates: all-or-nothing import naming every bad line, upsert, recompute; attribution settings."""
from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from config import ConfigError, check_settings, load_settings
from core.db import db
from models import CommissionRate


def test_rates_import_lists_every_bad_line_and_writes_nothing(app, runner, tmp_path):
    bad = tmp_path / "rates.csv"
    bad.write_text("category,rate\n奶粉,2%\n纸尿裤,abc\n辅食,120%\n奶粉,3%\n,0.1\n玩具,0.00001\n", encoding="utf-8")
    result = runner.invoke(args=["commission", "import", str(bad)])
    assert result.exit_code == 1
    for expected in ("line 3: commission: rate is not a number or percentage: 'abc'",
                     "line 4: commission: rate must be between 0 and 1 (or 0%–100%), not '120%'",
                     "line 5: commission: category '奶粉' is also on line 2",
                     "line 6: commission: category is missing",
                     "line 7: commission: rate has more than 4 decimals",
                     "5 bad record(s): nothing imported"):
        assert expected in result.output, result.output
    db.session.remove()
    assert db.session.scalars(select(CommissionRate)).all() == []

    good = tmp_path / "rates.jsonl"
    good.write_text('{"category": "奶粉", "rate": "2%"}\n{"category": "*", "rate": 0.04}\n', encoding="utf-8")
    assert "2 created" in runner.invoke(args=["commission", "import", str(good)]).output
    good.write_text('{"category": "奶粉", "rate": "2.5%"}\n{"category": "*", "rate": 0.04}\n', encoding="utf-8")
    assert "0 created, 1 updated, 1 unchanged" in runner.invoke(args=["commission", "import", str(good)]).output
    db.session.remove()
    assert db.session.scalar(select(CommissionRate.rate).where(CommissionRate.category == "奶粉")) == Decimal("0.0250")
    assert "奶粉\t2.50%" in runner.invoke(args=["commission", "list"]).output


def test_attribution_settings_are_checked_at_start_up():
    env = {"DATABASE_URL": "sqlite:////tmp/x.db", "DEMO": "1"}
    check_settings(load_settings(env))
    with pytest.raises(ConfigError, match="ATTRIBUTION_MODE must be binding or last_touch"):
        check_settings(load_settings({**env, "ATTRIBUTION_MODE": "first_touch"}))
    with pytest.raises(ConfigError, match="ATTRIBUTION_WINDOW_DAYS"):
        check_settings(load_settings({**env, "ATTRIBUTION_WINDOW_DAYS": "0"}))
    with pytest.raises(ConfigError, match="INGEST_HMAC_KEY is shorter than 16"):
        check_settings(load_settings({**env, "INGEST_HMAC_KEY": "short"}))
