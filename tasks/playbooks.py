"""SOP playbooks: an operations manager's multi-step journey for a segment, each step a red dot on its day.

A playbook (JSONL, one per line, or YAML, a list) looks like

    key: new_mom                  # a-z, 0-9, _ and -; upserted by key
    name: 新手妈妈30天
    segment: {tags: [0-6月], baby_stages: [孕期, 0-6月], lifecycle: [new]}   # all optional; empty = everyone
    steps:
      - {day: 0, title: 欢迎并介绍门店服务, script: b01, kind: service}   # day N after the customer was added
      - {day: 3, title: 喂养小贴士, content: dc01}
      - {date: 2026-11-11, phase: 爆发, title: 提醒下单}               # or a fixed date (a promotion's phases)

Steps are `marketing` unless they say `kind: service`; marketing steps respect the customer's touch caps and
do-not-disturb like the marketing rules do. `flask --app app tasks playbooks export FILE` writes the stored
playbooks back in this form (.yaml or .jsonl).
"""
from __future__ import annotations

import json
import re
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import yaml
from sqlalchemy import and_, exists, func, or_, select

from core.db import db
from core.timeutil import start_of
from imports.files import NUL_REASON, BadLine, ImportRejected, has_nul, parse_each, read_jsonl
from models import Customer, CustomerTag, Playbook, Tag
from tasks.rules import Candidate, _bound, marketing_allowed

BABY_STAGES = ("孕期", "0-6月", "6-12月", "1-3岁", "3岁以上")
LIFECYCLES = ("new", "active", "dormant", "lost")
KEY_RE = re.compile(r"^[a-z0-9_-]{1,40}$")
DEFAULT_PRIORITY = 65


def _shown(value) -> str:
    """A value as the file wrote it: the JSONL reader keeps numbers as Decimal, shown as written."""
    return str(value) if isinstance(value, Decimal) else repr(value)


def _words(value, name: str, allowed=None) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, (str, int)) for v in value):
        raise ValueError(f"{name} must be a list")
    out = [str(v).strip() for v in value if str(v).strip()]
    if allowed:
        bad = [v for v in out if v not in allowed]
        if bad:
            raise ValueError(f"{name}: {bad[0]!r} is not one of {'、'.join(allowed)}")
    return out


def parse_playbook(rec) -> dict:
    if not isinstance(rec, dict):
        raise ValueError("a playbook must be an object")
    key = rec.get("key")
    if not isinstance(key, str) or not KEY_RE.match(key):
        raise ValueError(f"key must be 1–40 of a-z 0-9 _ -, not {_shown(key)}")
    name = rec.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 100:
        raise ValueError("name is missing or longer than 100 characters")
    seg = rec.get("segment") or {}
    if not isinstance(seg, dict):
        raise ValueError("segment must be an object")
    unknown = set(seg) - {"tags", "baby_stages", "lifecycle"}
    if unknown:
        raise ValueError(f"segment.{sorted(unknown)[0]} is not known (tags, baby_stages, lifecycle)")
    segment = {"tags": _words(seg.get("tags"), "segment.tags"),
               "baby_stages": _words(seg.get("baby_stages"), "segment.baby_stages", BABY_STAGES),
               "lifecycle": _words(seg.get("lifecycle"), "segment.lifecycle", LIFECYCLES)}
    steps = rec.get("steps")
    if not isinstance(steps, list) or not steps:
        raise ValueError("steps must be a non-empty list")
    out, seen = [], set()
    for i, step in enumerate(steps, 1):
        where = f"steps[{i}]"
        if not isinstance(step, dict):
            raise ValueError(f"{where} must be an object")
        if ("day" in step) == ("date" in step):
            raise ValueError(f"{where} needs either day (days after adding) or date")
        clean = {}
        if "day" in step:
            day = step["day"]
            if isinstance(day, bool) or not isinstance(day, int) or not 0 <= day <= 365:
                raise ValueError(f"{where}.day must be a whole number 0–365, not {_shown(day)}")
            clean["day"] = day
            when = ("day", day)
        else:
            raw = step["date"]
            try:
                d = raw if isinstance(raw, date) else date.fromisoformat(str(raw))
            except ValueError:
                raise ValueError(f"{where}.date is not a date: {_shown(raw)}") from None
            clean["date"] = d.isoformat()
            when = ("date", d.isoformat())
        if when in seen:
            raise ValueError(f"{where}: two steps on the same {when[0]} {when[1]}")
        seen.add(when)
        title = step.get("title")
        if not isinstance(title, str) or not title.strip() or len(title) > 60:
            raise ValueError(f"{where}.title is missing or longer than 60 characters")
        clean["title"] = title.strip()
        kind = step.get("kind", "marketing")
        if kind not in ("marketing", "service"):
            raise ValueError(f"{where}.kind must be marketing or service, not {_shown(kind)}")
        clean["kind"] = kind
        for ref in ("script", "content", "coupon", "phase"):
            if step.get(ref) is not None:
                if not isinstance(step[ref], str) or len(step[ref]) > 64:
                    raise ValueError(f"{where}.{ref} must be a short text")
                clean[ref] = step[ref]
        if step.get("priority") is not None:
            pr = step["priority"]
            if isinstance(pr, bool) or not isinstance(pr, int) or not 0 <= pr <= 100:
                raise ValueError(f"{where}.priority must be 0–100")
            clean["priority"] = pr
        out.append(clean)
    return {"key": key, "name": name.strip(), "segment": segment, "steps": out,
            "enabled": bool(rec.get("enabled", True))}


def read_playbooks(path) -> list[tuple[int | str, object]]:
    """(where, record) per playbook: "playbook N" in a YAML list, the line number in a JSONL file (a line that
    is not JSON is a BadLine). Raises ImportRejected for a YAML file that cannot be read as a list."""
    path = Path(path)
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ImportRejected([("file", f"YAML syntax error: {exc}")]) from None
        if isinstance(data, dict) and "playbooks" in data:
            data = data["playbooks"]
        if not isinstance(data, list):
            raise ImportRejected([("file", "a YAML file holds a list of playbooks")])
        return [(f"playbook {i}", BadLine(NUL_REASON) if has_nul([rec]) else rec) for i, rec in enumerate(data, 1)]
    return list(read_jsonl(path))


def import_playbooks(items: list[tuple[int | str, object]]) -> int:
    """Validate every playbook, then upsert by key and commit. Raises ImportRejected (every bad playbook)
    with nothing written."""
    errors, parsed = [], {}
    for where, values in parse_each(items, parse_playbook, errors, catch=ValueError):
        if values["key"] in parsed:
            errors.append((where, f"key {values['key']!r} appears twice"))
            continue
        parsed[values["key"]] = values
    if not parsed and not errors:
        errors.append(("file", "no playbooks"))
    if errors:
        raise ImportRejected(errors)
    existing = {p.key: p for p in db.session.scalars(select(Playbook).where(Playbook.key.in_(list(parsed))))}
    for key, values in parsed.items():
        row = existing.get(key)
        if row is None:
            db.session.add(Playbook(**values))
        else:
            for k, v in values.items():
                setattr(row, k, v)
    db.session.commit()
    return len(parsed)


STEP_FIELDS = ("day", "date", "phase", "title", "kind", "script", "content", "coupon", "priority")


def playbook_record(pb: Playbook) -> dict:
    """The playbook as a person writes it in the import file: fields in reading order, what is left at its
    default (an empty segment list, kind marketing, enabled) left out. Imports back to the same row."""
    segment = {k: pb.segment[k] for k in ("tags", "baby_stages", "lifecycle") if (pb.segment or {}).get(k)}
    steps = [{k: step[k] for k in STEP_FIELDS if step.get(k) is not None
              and not (k == "kind" and step[k] == "marketing")} for step in pb.steps]
    rec = {"key": pb.key, "name": pb.name}
    if segment:
        rec["segment"] = segment
    rec["steps"] = steps
    if not pb.enabled:
        rec["enabled"] = False
    return rec


def export_playbooks(path) -> int:
    """Write every playbook to `path`: .yaml (a list, as docs/examples/playbooks.yaml) or .jsonl (one per
    line), in the form `tasks playbooks import` reads; importing it back changes nothing."""
    path = Path(path)
    records = [playbook_record(pb) for pb in db.session.scalars(select(Playbook).order_by(Playbook.key))]
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        for rec in records:  # a date unquoted, as people write it (YAML reads it back as a date)
            for step in rec["steps"]:
                if "date" in step:
                    step["date"] = date.fromisoformat(step["date"])
        text = yaml.safe_dump(records, allow_unicode=True, sort_keys=False, default_flow_style=None, width=1000)
        path.write_text(text, encoding="utf-8")
    elif suffix == ".jsonl":
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    else:
        raise ValueError(f"{path.name}: export to .yaml or .jsonl")
    return len(records)


# ------------------------------------------------------------------------------------------ segment SQL


def _months_before(d: date, months: int) -> date:
    y, m = divmod(d.year * 12 + d.month - 1 - months, 12)
    m += 1
    for day in (d.day, 30, 29, 28):
        try:
            return date(y, m, day)
        except ValueError:
            continue
    raise AssertionError("unreachable")


def baby_stage_sql(stage: str, D: date):
    born = Customer.baby_birthday
    if stage == "孕期":
        return and_(Customer.due_date >= D, or_(born.is_(None), born > D))
    bounds = {"0-6月": (6, 0), "6-12月": (12, 6), "1-3岁": (36, 12), "3岁以上": (None, 36)}[stage]
    older, younger = bounds
    cond = [born <= (_months_before(D, younger) if younger else D)]
    if older:
        cond.append(born > _months_before(D, older))
    return and_(born.is_not(None), *cond)


def lifecycle_sql(stage: str, D: date):
    """Mirrors customers.segments.lifecycle_stage in SQL."""
    added = func.coalesce(Customer.first_added_at, Customer.created_at)
    anchor = func.coalesce(Customer.last_order_at, added)
    new = and_(added >= start_of(D - timedelta(days=29)), Customer.order_count <= 1)
    lost = or_(Customer.binding_guide_id.is_(None), anchor < start_of(D - timedelta(days=179)))
    dormant = and_(anchor < start_of(D - timedelta(days=29)))
    return {"new": new, "lost": and_(~new, lost), "dormant": and_(~new, ~lost, dormant),
            "active": and_(~new, ~lost, ~dormant)}[stage]


def segment_sql(segment: dict, D: date):
    conds = []
    if segment.get("tags"):
        names = [t.split("/", 1)[-1] for t in segment["tags"]]
        conds.append(exists().where(CustomerTag.customer_id == Customer.id, CustomerTag.tag_id == Tag.id,
                                    Tag.name.in_(names)))
    if segment.get("baby_stages"):
        conds.append(or_(*[baby_stage_sql(s, D) for s in segment["baby_stages"]]))
    if segment.get("lifecycle"):
        conds.append(or_(*[lifecycle_sql(s, D) for s in segment["lifecycle"]]))
    return and_(True, *conds)


def candidates(D: date, settings: dict) -> list[Candidate]:
    out = []
    for pb in db.session.scalars(select(Playbook).where(Playbook.enabled.is_(True)).order_by(Playbook.key)):
        for step in pb.steps:
            if "day" in step:
                added_on = D - timedelta(days=step["day"])
                when = and_(Customer.first_added_at >= start_of(added_on),
                            Customer.first_added_at < start_of(added_on + timedelta(days=1)))
                label = step.get("phase") or f"第{step['day']}天"
            elif step["date"] == D.isoformat():
                when = True
                label = step.get("phase") or step["date"]
            else:
                continue
            conds = [when, segment_sql(pb.segment or {}, D)]
            marketing = step.get("kind", "marketing") == "marketing"
            if marketing:
                conds.append(marketing_allowed(D, settings))
            for cid, gid, spend in db.session.execute(_bound().where(*conds)):
                out.append(Candidate(gid, cid, f"sop:{pb.key}", step.get("priority", DEFAULT_PRIORITY), spend,
                                     f"{pb.name}·{label}：{step['title']}"[:200], {"playbook": pb.key},
                                     script=step.get("script"), content=step.get("content"),
                                     coupon=step.get("coupon"), marketing=marketing))
    return out


def list_playbooks() -> list[dict]:
    return [{"key": p.key, "name": p.name, "enabled": p.enabled, "segment": p.segment, "steps": p.steps}
            for p in db.session.scalars(select(Playbook).order_by(Playbook.key))]
