"""Commission rates: all-or-nothing import naming every bad line, upsert, export that imports back unchanged,
recompute; attribution settings."""
from __future__ import annotations

import csv
import json
from decimal import Decimal
from pathlib import Path

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


def stored_rates() -> list[tuple]:
    db.session.remove()
    return db.session.execute(select(CommissionRate.category, CommissionRate.rate, CommissionRate.updated_at)
                              .order_by(CommissionRate.category)).all()


def test_export_is_the_import_format_and_imports_back_unchanged(app, runner, tmp_path):
    demo = Path(__file__).resolve().parents[2] / "demo" / "commission.csv"  # finance's file: category,rate as 2%
    assert "6 created" in runner.invoke(args=["commission", "import", str(demo)]).output
    before = stored_rates()
    with open(demo, encoding="utf-8-sig", newline="") as f:
        imported = sorted((r["category"], r["rate"]) for r in csv.DictReader(f))

    out = tmp_path / "rates.csv"
    result = runner.invoke(args=["commission", "export", str(out)])
    assert result.exit_code == 0 and f"6 commission rates written to {out}" in result.output
    with open(out, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted((r["category"], r["rate"]) for r in rows) == imported
    assert rows[-1]["category"] == "*"  # "every other category" comes last, as finance writes it
    again = runner.invoke(args=["commission", "import", str(out)])
    assert "0 created, 0 updated, 6 unchanged" in again.output, again.output

    out = tmp_path / "rates.jsonl"
    assert runner.invoke(args=["commission", "export", str(out)]).exit_code == 0
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert sorted((r["category"], r["rate"]) for r in lines) == imported
    again = runner.invoke(args=["commission", "import", str(out)])
    assert "0 created, 0 updated, 6 unchanged" in again.output, again.output
    assert stored_rates() == before  # not even rewritten

    # A rate written as a fraction, or with decimals, comes back as the same rate.
    (tmp_path / "more.jsonl").write_text('{"category": "玩具", "rate": 0.0125}\n{"category": "奶粉", "rate": 1}\n',
                                         encoding="utf-8")
    runner.invoke(args=["commission", "import", str(tmp_path / "more.jsonl")])
    runner.invoke(args=["commission", "export", str(out)])
    exported = dict((r["category"], r["rate"]) for r in map(json.loads, out.read_text(encoding="utf-8").splitlines()))
    assert exported["玩具"] == "1.25%" and exported["奶粉"] == "100%"
    assert "0 created, 0 updated, 7 unchanged" in runner.invoke(args=["commission", "import", str(out)]).output

    result = runner.invoke(args=["commission", "export", str(tmp_path / "rates.xlsx")])
    assert result.exit_code == 2 and "export to .jsonl or .csv" in result.output


def test_a_category_excel_would_run_as_a_formula_is_exported_as_text_and_imports_back_unchanged(
        app, runner, tmp_path):
    categories = ["=HYPERLINK(\"http://x\",\"奶粉\")", "+奶粉", "-特价", "@玩具", "'=已加引号", "'普通", "奶粉"]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"category": c, "rate": "2%"}, ensure_ascii=False) + "\n"
                                               for c in categories), encoding="utf-8")
    assert "7 created" in runner.invoke(args=["commission", "import", str(tmp_path / "in.jsonl")]).output
    before = stored_rates()

    out = tmp_path / "rates.csv"
    assert runner.invoke(args=["commission", "export", str(out)]).exit_code == 0
    with open(out, encoding="utf-8-sig", newline="") as f:
        cells = [r["category"] for r in csv.DictReader(f)]
    assert not [c for c in cells if c[:1] in "=+-@"]  # Excel shows every one as text
    assert sorted(cells) == sorted(["'=HYPERLINK(\"http://x\",\"奶粉\")", "'+奶粉", "'-特价", "'@玩具", "''=已加引号",
                                    "'普通", "奶粉"])
    again = runner.invoke(args=["commission", "import", str(out)])
    assert "0 created, 0 updated, 7 unchanged" in again.output, again.output
    assert stored_rates() == before


def test_attribution_settings_are_checked_at_start_up():
    env = {"DATABASE_URL": "sqlite:////tmp/x.db", "DEMO": "1"}
    check_settings(load_settings(env))
    with pytest.raises(ConfigError, match="ATTRIBUTION_MODE must be binding or last_touch"):
        check_settings(load_settings({**env, "ATTRIBUTION_MODE": "first_touch"}))
    with pytest.raises(ConfigError, match="ATTRIBUTION_WINDOW_DAYS"):
        check_settings(load_settings({**env, "ATTRIBUTION_WINDOW_DAYS": "0"}))
    with pytest.raises(ConfigError, match="INGEST_HMAC_KEY is shorter than 16"):
        check_settings(load_settings({**env, "INGEST_HMAC_KEY": "short"}))


def test_a_category_starting_with_a_tab_or_a_carriage_return_is_exported_as_text(app, runner, tmp_path):
    from imports.files import guard_formula, unguard_formula
    from models import CommissionRate

    db.session.add_all([CommissionRate(category="\t=1+1", rate=Decimal("0.02")),
                        CommissionRate(category="\r=1+1", rate=Decimal("0.03"))])
    db.session.commit()
    out = tmp_path / "rates.csv"
    assert runner.invoke(args=["commission", "export", str(out)]).exit_code == 0
    with open(out, encoding="utf-8-sig", newline="") as f:
        cells = sorted(r["category"] for r in csv.DictReader(f))
    assert cells == ["'\t=1+1", "'\r=1+1"]
    assert [unguard_formula(guard_formula(c)) for c in ("\t=x", "'\t=x", "\tabc")] == ["\t=x", "'\t=x", "\tabc"]
