"""SOP playbooks: a journey's steps become tasks on their day, for the customers of its segment."""
from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import yaml

from sqlalchemy import func, select

from core.db import db
from models import Playbook, RedDot
from tasks import operations as ops
from tests.tasks import factories as f
from tests.tasks.factories import D

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "playbooks.yaml"

YAML = """
- key: new_mom
  name: 新手妈妈30天
  segment: {baby_stages: [0-6月], lifecycle: [new, active]}
  steps:
    - {day: 0, title: 欢迎并介绍门店服务, kind: service, script: b01}
    - {day: 3, title: 喂养小贴士, content: dc01}
    - {day: 7, title: 送新客券, coupon: NEW50}
- key: double11
  name: 双11大促
  segment: {tags: [VIP]}
  steps:
    - {date: 2026-06-15, phase: 预热, title: 预告会员专享价}
    - {date: 2026-06-18, phase: 爆发, title: 提醒下单}
"""


def test_steps_become_tasks_on_their_day(app, runner, tmp_path):
    path = tmp_path / "playbooks.yaml"
    path.write_text(YAML, encoding="utf-8")
    result = runner.invoke(args=["tasks", "playbooks", "import", str(path)])
    assert result.exit_code == 0, result.output
    listing = runner.invoke(args=["tasks", "playbooks", "list"]).output
    assert "new_mom: 新手妈妈30天" in listing and "第3天" in listing and "预热预告会员专享价" in listing

    g = f.guide()
    mom = f.customer(g, added=D - timedelta(days=3), baby_birthday=D - timedelta(days=40))
    older = f.customer(g, added=D - timedelta(days=3), baby_birthday=D - timedelta(days=400))  # not 0-6月
    today = f.customer(g, added=D, baby_birthday=D - timedelta(days=10))
    vip = f.customer(g)
    f.tag(vip, "VIP")
    db.session.commit()
    ops.generate(D)
    tasks = {(t.customer_id, t.rule): t for t in db.session.scalars(select(RedDot))}
    step3 = tasks[(mom.id, "sop:new_mom")]
    assert step3.reason == "新手妈妈30天·第3天：喂养小贴士" and step3.content_external_id == "dc01"
    assert (older.id, "sop:new_mom") not in tasks
    assert tasks[(today.id, "sop:new_mom")].script_external_id == "b01"
    assert tasks[(vip.id, "sop:double11")].reason == "双11大促·预热：预告会员专享价"
    assert len(tasks) == 3


def test_a_bad_playbook_file_imports_nothing(app, runner, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join([
        '{"key": "ok", "name": "好的", "steps": [{"day": 1, "title": "第一步"}]}',
        '{"key": "Bad Key", "name": "x", "steps": [{"day": 1, "title": "t"}]}',
        '{"key": "nosteps", "name": "x", "steps": []}',
        '{"key": "both", "name": "x", "steps": [{"day": 1, "date": "2026-01-01", "title": "t"}]}',
        '{"key": "stage", "name": "x", "segment": {"baby_stages": ["5岁"]}, "steps": [{"day": 1, "title": "t"}]}',
        '{"key": "far", "name": "x", "steps": [{"day": 999, "title": "t"}]}',
    ]), encoding="utf-8")
    result = runner.invoke(args=["tasks", "playbooks", "import", str(path)])
    assert result.exit_code == 1
    out = result.output
    assert "line 2: key must be 1–40 of a-z 0-9 _ -" in out
    assert "line 3: steps must be a non-empty list" in out
    assert "line 4: steps[1] needs either day" in out
    assert "line 5: segment.baby_stages: '5岁' is not one of" in out
    assert "line 6: steps[1].day must be a whole number 0–365" in out
    assert out.rstrip().endswith("5 bad playbook(s): nothing imported")
    assert db.session.scalar(select(func.count()).select_from(Playbook)) == 0


def test_a_line_that_is_not_json_and_a_yaml_file_that_is_no_list_are_named(app, runner, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"key": "ok", "name": "好的", "steps": [{"day": 1, "title": "第一步"}]}\n'
                    '{"key": "ok2", "name": "x", "steps": [{"day": 1.5, "title": "t"}]}\n'
                    '{"key": "broken",\n', encoding="utf-8")
    result = runner.invoke(args=["tasks", "playbooks", "import", str(path)])
    assert result.exit_code == 1
    assert "line 2: steps[1].day must be a whole number 0–365, not 1.5" in result.output
    assert "line 3: JSON syntax error: " in result.output
    assert result.output.rstrip().endswith("2 bad playbook(s): nothing imported")

    path = tmp_path / "bad.yaml"
    path.write_text("key: new_mom\nname: 新手妈妈30天\n", encoding="utf-8")
    result = runner.invoke(args=["tasks", "playbooks", "import", str(path)])
    assert result.exit_code == 1
    assert result.output.splitlines() == ["file: a YAML file holds a list of playbooks",
                                          "1 bad playbook(s): nothing imported"]
    assert db.session.scalar(select(func.count()).select_from(Playbook)) == 0


def test_the_documented_example_imports(app, runner):
    result = runner.invoke(args=["tasks", "playbooks", "import", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    assert "2 playbook(s) imported" in result.output


def stored_playbooks() -> list[tuple]:
    db.session.remove()
    return db.session.execute(select(Playbook.key, Playbook.name, Playbook.segment, Playbook.steps, Playbook.enabled,
                                     Playbook.updated_at).order_by(Playbook.key)).all()


def test_export_is_the_import_format_and_imports_back_unchanged(app, runner, tmp_path):
    paused = {"key": "paused", "name": "停用的玩法", "enabled": False,
              "steps": [{"day": 1, "title": "回访", "kind": "service", "priority": 80}]}
    extra = tmp_path / "extra.jsonl"
    extra.write_text(json.dumps(paused, ensure_ascii=False) + "\n", encoding="utf-8")
    for path in (EXAMPLE, extra):
        assert runner.invoke(args=["tasks", "playbooks", "import", str(path)]).exit_code == 0
    before = stored_playbooks()
    imported = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8")) + [paused]

    out = tmp_path / "playbooks.yaml"
    result = runner.invoke(args=["tasks", "playbooks", "export", str(out)])
    assert result.exit_code == 0 and f"3 playbook(s) written to {out}" in result.output
    exported = yaml.safe_load(out.read_text(encoding="utf-8"))
    by_key = lambda records: sorted(records, key=lambda r: r["key"])  # noqa: E731
    assert by_key(exported) == by_key(imported)  # the same file, dates and all, but in key order
    assert "- {day: 0, title: 欢迎并介绍门店服务, kind: service, script: b01}" in out.read_text(encoding="utf-8")

    out_jsonl = tmp_path / "playbooks.jsonl"
    assert runner.invoke(args=["tasks", "playbooks", "export", str(out_jsonl)]).exit_code == 0
    lines = [json.loads(line) for line in out_jsonl.read_text(encoding="utf-8").splitlines()]
    as_json = json.loads(json.dumps(imported, ensure_ascii=False, default=str))  # YAML dates as JSON strings
    assert by_key(lines) == by_key(as_json)

    for path in (out, out_jsonl):
        result = runner.invoke(args=["tasks", "playbooks", "import", str(path)])
        assert result.exit_code == 0 and "3 playbook(s) imported" in result.output
    assert stored_playbooks() == before  # not even rewritten

    result = runner.invoke(args=["tasks", "playbooks", "export", str(tmp_path / "playbooks.csv")])
    assert result.exit_code == 2 and "export to .yaml or .jsonl" in result.output
