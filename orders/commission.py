"""Commission rates per product category, imported by finance (`flask --app app commission import FILE`).

Records (JSONL or CSV): category, rate — a fraction (0.03) or a percentage ("3%"), from 0 to 100 %.
Category `*` is the rate of every category not listed. Upserted by category, all or nothing. Rates apply to
orders attributed from then on; `flask --app app commission recompute --since D` re-prices earlier ones.
`flask --app app commission export FILE` writes them back in the same format, as percentages ("3%").
"""
from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from pathlib import Path

from sqlalchemy import select

from core.db import db
from imports.files import ImportRejected, parse_each
from imports.records import RecordError, text
from models import CommissionRate


def parse_rate(rec) -> tuple[str, Decimal]:
    if not isinstance(rec, dict):
        raise RecordError("a record must be a JSON object")
    category = text(rec, "category", 64)
    raw = rec.get("rate")
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        raise RecordError("rate is missing")
    if isinstance(raw, bool):
        raise RecordError(f"rate is not a number: {raw!r}")
    s = str(raw).strip()
    try:
        rate = Decimal(s[:-1]) / 100 if s.endswith("%") else Decimal(s)
        if not rate.is_finite():
            raise InvalidOperation
    except (InvalidOperation, ValueError):
        raise RecordError(f"rate is not a number or percentage: {raw!r}") from None
    if not 0 <= rate <= 1:
        raise RecordError(f"rate must be between 0 and 1 (or 0%–100%), not {raw!r}")
    if rate != rate.quantize(Decimal("0.0001")):
        raise RecordError(f"rate has more than 4 decimals (0.01 %): {raw!r}")
    return category, rate.quantize(Decimal("0.0001"))


def import_rates(lines: Iterable[tuple[int, object]]) -> dict[str, int]:
    errors, rates, seen = [], {}, {}
    for lineno, (category, rate) in parse_each(lines, parse_rate, errors, catch=RecordError, prefix="commission: "):
        if category in seen:
            errors.append((lineno, f"commission: category {category!r} is also on line {seen[category]}"))
            continue
        seen[category] = lineno
        rates[category] = rate
    if not rates and not errors:
        errors.append((0, "the file has no rates"))
    if errors:
        raise ImportRejected(errors)
    stored = {r.category: r for r in db.session.scalars(select(CommissionRate))}
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    for category, rate in rates.items():
        row = stored.get(category)
        if row is None:
            db.session.add(CommissionRate(category=category, rate=rate))
            counts["created"] += 1
        elif row.rate != rate:
            row.rate = rate
            counts["updated"] += 1
        else:
            counts["unchanged"] += 1
    db.session.flush()
    return counts


def list_rates() -> list[tuple[str, Decimal]]:
    return [(r.category, r.rate) for r in db.session.scalars(select(CommissionRate).order_by(CommissionRate.category))]


def percent_text(rate: Decimal) -> str:
    """0.0300 → "3%", 0.0125 → "1.25%": how finance writes a rate, and read back as the same rate."""
    return f"{(rate * 100).normalize():f}%"


GUARDED = ("category",)  # CSV cells written with guard_formula (a rate never starts with = + - @)


def export_rates(path) -> int:
    """Write every rate to `path` (.csv or .jsonl: category, rate) as `commission import` reads it, `*` last;
    importing the file back changes nothing. Returns the number of rates. In the CSV, a category starting with
    = + - @ is written after a ' so that Excel shows it instead of running it; the import takes the ' off."""
    from imports.files import guard_formula

    path = Path(path)
    rows = sorted(list_rates(), key=lambda r: (r[0] == "*", r[0]))
    records = [{"category": category, "rate": percent_text(rate)} for category, rate in rows]
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with open(path, "w", encoding="utf-8-sig", newline="") as f:  # the BOM: Excel reads it as UTF-8
            w = csv.DictWriter(f, fieldnames=("category", "rate"))
            w.writeheader()
            w.writerows({**r, "category": guard_formula(r["category"])} for r in records)
    elif suffix == ".jsonl":
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    else:
        raise ValueError(f"{path.name}: export to .jsonl or .csv")
    return len(records)
