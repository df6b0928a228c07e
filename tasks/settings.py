"""Parameters of the red-dot rules and of the customer protection, with their defaults and allowed ranges.

Overrides come from the `TASK_RULES` setting: a JSON object, or the path of a JSON/YAML file holding one,
e.g. `{"dormant": {"days": 45}, "daily_cap": 20, "quiet_hours": "22:00-08:00"}`. Anything unknown or out of
range stops start-up (and `tasks generate`) with a message naming it.
"""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import yaml

# rule -> {parameter: (default, low, high)}; every rule also has `priority` (0–100) and `script` (an
# external_id pinning the suggested script; by default the library is searched with the rule's words).
RULES = {
    "birthday": {"days_ahead": (6, 0, 30), "priority": (90, 0, 100)},
    "dormant": {"days": (30, 7, 365), "quiet_days": (14, 0, 90), "repeat_days": (30, 1, 365),
                "priority": (60, 0, 100)},
    "post_purchase": {"days_after": (3, 1, 30), "priority": (80, 0, 100)},
    "replenish": {"days_before": (3, 0, 30), "priority": (70, 0, 100)},
    "coupon_expiring": {"days_ahead": (2, 0, 30), "priority": (75, 0, 100)},
    "new_contact": {"days_after": (1, 1, 7), "priority": (85, 0, 100)},
    "lost_contact": {"alert_threshold": (10, 1, 1000), "priority": (95, 0, 100)},
}
# Marketing rules respect the customer's touch caps and do-not-disturb; service rules never do.
MARKETING_RULES = {"birthday", "dormant", "replenish", "coupon_expiring"}
GLOBAL = {
    "daily_cap": (30, 1, 500),          # tasks shown to one guide a day; the rest is "more"
    "marketing_per_day": (1, 0, 20),    # marketing touches per customer per day, across all guides
    "marketing_per_week": (3, 0, 50),   # … and in any 7 days
}
DEFAULT_QUIET_HOURS = "21:30-08:30"
DEFAULT_DND_TAGS = ["免打扰", "勿扰"]
# What the library is searched with for a rule's suggested script, when no `script` is pinned.
SCRIPT_QUERIES = {
    "birthday": "生日祝福 生日礼",
    "dormant": "好久不见 回访 老客 回店",
    "post_purchase": "购买后回访 使用情况 适应",
    "replenish": "补货 回购 快用完",
    "coupon_expiring": "优惠券 快过期 使用",
    "new_contact": "新客 欢迎 介绍",
    "lost_contact": "流失 挽回",
}


class RuleSettingsError(ValueError):
    """A rule parameter is unknown or out of range; the message names it."""


def _read(raw) -> dict:
    if raw in (None, ""):
        return {}
    if isinstance(raw, dict):
        return raw
    text = str(raw).strip()
    if not text.startswith("{"):
        path = Path(text)
        if not path.exists():
            raise RuleSettingsError(f"TASK_RULES: no such file {text!r}")
        text = path.read_text(encoding="utf-8")
        data = yaml.safe_load(text) if path.suffix.lower() in (".yaml", ".yml") else json.loads(text)
    else:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise RuleSettingsError(f"TASK_RULES is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise RuleSettingsError("TASK_RULES must be an object")
    return data


def _number(name: str, value, low, high) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RuleSettingsError(f"{name} must be a whole number, not {value!r}")
    if not low <= value <= high:
        raise RuleSettingsError(f"{name} = {value} is out of range ({low}–{high})")
    return value


def _quiet_hours(value) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", str(value))
    if not m:
        raise RuleSettingsError(f"quiet_hours must look like 21:30-08:30, not {value!r}")
    h1, m1, h2, m2 = map(int, m.groups())
    if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
        raise RuleSettingsError(f"quiet_hours has an impossible time: {value!r}")
    return h1 * 60 + m1, h2 * 60 + m2


def load_rule_settings(raw=None) -> dict:
    """The full settings: defaults overridden by `raw` (see the module doc). Raises RuleSettingsError."""
    data = copy.deepcopy(_read(raw))
    out: dict = {"rules": {}, "quiet_hours": _quiet_hours(data.pop("quiet_hours", DEFAULT_QUIET_HOURS))}
    dnd = data.pop("dnd_tags", DEFAULT_DND_TAGS)
    if not isinstance(dnd, list) or not all(isinstance(t, str) and t.strip() for t in dnd):
        raise RuleSettingsError("dnd_tags must be a list of tag names")
    out["dnd_tags"] = [t.strip() for t in dnd]
    for name, (default, low, high) in GLOBAL.items():
        out[name] = _number(name, data.pop(name, default), low, high)
    for rule, params in RULES.items():
        given = data.pop(rule, {}) or {}
        if not isinstance(given, dict):
            raise RuleSettingsError(f"{rule} must be an object of parameters")
        given = dict(given)
        values = {"enabled": bool(given.pop("enabled", True)), "script": given.pop("script", None)}
        if values["script"] is not None and not isinstance(values["script"], str):
            raise RuleSettingsError(f"{rule}.script must be a script's external_id")
        for param, (default, low, high) in params.items():
            values[param] = _number(f"{rule}.{param}", given.pop(param, default), low, high)
        if given:
            raise RuleSettingsError(f"{rule}.{sorted(given)[0]} is not a parameter of {rule} "
                                    f"(known: {', '.join(params)}, enabled, script)")
        out["rules"][rule] = values
    if data:
        raise RuleSettingsError(f"TASK_RULES: unknown setting {sorted(data)[0]!r}")
    return out


def rule_settings(app=None) -> dict:
    from flask import current_app

    app = app or current_app
    cached = app.extensions.get("task_rules")
    if cached is None:
        cached = load_rule_settings(app.config.get("TASK_RULES"))
        app.extensions["task_rules"] = cached
    return cached
