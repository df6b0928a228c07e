"""Parse and validate one import record into a normalized dict (pass 1 of an import).

Every `parse_*` takes the raw record (from JSON or a CSV row: CSV gives strings, empty means absent) and
returns plain Python values: str, int, Decimal, aware UTC datetime, date. A bad record raises RecordError
whose message names the field and the bad value; the caller prefixes the line number and record type.
"""
from __future__ import annotations

import json
import re
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from core.timeutil import parse_date, parse_datetime
from models.customers import IDENTITY_KINDS
from models.org import ROLES

# Dependency order: a type may refer to the types before it.
TYPE_ORDER = ("store", "guide", "tag", "product", "customer", "follow", "customer_tag", "order")
# Types a CSV file can hold (one flat record per row).
CSV_TYPES = ("store", "guide", "tag", "product", "customer", "follow", "customer_tag")

CENT = Decimal("0.01")
MAX_MONEY = Decimal("9999999999.99")  # Numeric(12, 2)


class RecordError(ValueError):
    """One record is bad; the message says which field and why."""


def _absent(value) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def text(rec: dict, field: str, maxlen: int, *, required: bool = True) -> str | None:
    value = rec.get(field)
    if _absent(value):
        if required:
            raise RecordError(f"{field} is missing")
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise RecordError(f"{field} must be a string, not {json.dumps(value, ensure_ascii=False, default=str)}")
    value = str(value).strip()
    if len(value) > maxlen:
        raise RecordError(f"{field} is longer than {maxlen} characters: {value[:40]!r}…")
    return value


def integer(rec: dict, field: str, *, required: bool = False, lo: int | None = None, hi: int | None = None):
    value = rec.get(field)
    if _absent(value):
        if required:
            raise RecordError(f"{field} is missing")
        return None
    if isinstance(value, bool):
        raise RecordError(f"{field} is not a whole number: {value!r}")
    if isinstance(value, int):
        number = value
    else:
        try:
            number = Decimal(str(value).strip())
            if number != number.to_integral_value():
                raise InvalidOperation
            number = int(number)
        except (InvalidOperation, ValueError):
            raise RecordError(f"{field} is not a whole number: {value!r}") from None
    if (lo is not None and number < lo) or (hi is not None and number > hi):
        raise RecordError(f"{field} is out of range: {value!r}")
    return number


def money(rec: dict, field: str, *, required: bool = True) -> Decimal | None:
    value = rec.get(field)
    if _absent(value):
        if required:
            raise RecordError(f"{field} is missing")
        return None
    if isinstance(value, bool):
        raise RecordError(f"{field} is not a number: {value!r}")
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value).strip())
        if not number.is_finite():
            raise InvalidOperation
    except (InvalidOperation, ValueError):
        raise RecordError(f"{field} is not a number: {value!r}") from None
    number = number.quantize(CENT, rounding=ROUND_HALF_UP)
    if number < 0 or number > MAX_MONEY:
        raise RecordError(f"{field} is out of range: {value!r}")
    return number


def when(rec: dict, field: str, *, required: bool = True) -> datetime | None:
    value = rec.get(field)
    if _absent(value):
        if required:
            raise RecordError(f"{field} is missing")
        return None
    try:
        if not isinstance(value, str):
            raise ValueError
        return parse_datetime(value)
    except ValueError:
        raise RecordError(f"{field} is not an ISO 8601 time: {value!r}") from None


def day(rec: dict, field: str) -> date | None:
    value = rec.get(field)
    if _absent(value):
        return None
    try:
        if not isinstance(value, str):
            raise ValueError
        return parse_date(value)
    except ValueError:
        raise RecordError(f"{field} is not an ISO 8601 date: {value!r}") from None


_PHONE = re.compile(r"[\d\s\-().+]*\d[\d\s\-().+]*")
_MAINLAND_MOBILE = re.compile(r"(?:\+?86|0086)?(1\d{10})")


def phone_like(value: str) -> bool:
    """Digits with only the separators people type in a phone number (spaces, dashes, dots, brackets, +)."""
    return bool(_PHONE.fullmatch(value))


def identity_value(kind: str, value: str) -> str:
    """One spelling per identity, so the POS's "+86 139-8765-4321" and the shop's "13987654321" are one customer:
    a mobile loses its spaces, dashes, dots and brackets, and a mainland mobile its +86 / 86 / 0086; anything
    that is not phone-like (and every other kind) is kept as given."""
    if kind != "mobile" or not phone_like(value):
        return value
    compact = re.sub(r"[\s\-().]", "", value)
    compact = "+" * compact.startswith("+") + compact.replace("+", "")
    mainland = _MAINLAND_MOBILE.fullmatch(compact)
    return mainland.group(1) if mainland else compact


def identity_keys(rec: dict, where: str = "") -> dict[str, str]:
    """The One-ID keys present in `rec` ({kind: value}, each as identity_value spells it); at least one is
    required."""
    keys = {}
    for kind in IDENTITY_KINDS:
        value = text(rec, kind, 128, required=False)
        if value is not None:
            keys[kind] = identity_value(kind, value)
    if not keys:
        raise RecordError(f"{where}needs at least one identity key ({', '.join(IDENTITY_KINDS)})")
    return keys


def parse_store(rec: dict) -> dict:
    return {"code": text(rec, "code", 40), "name": text(rec, "name", 100), "city": text(rec, "city", 60, required=False)}


def parse_guide(rec: dict) -> dict:
    role = text(rec, "role", 16, required=False) or "guide"
    if role not in ROLES:
        raise RecordError(f"role must be one of {'|'.join(ROLES)}, not {role!r}")
    return {
        "userid": text(rec, "userid", 64),
        "name": text(rec, "name", 64),
        "store": text(rec, "store", 40, required=False),
        "role": role,
    }


def parse_tag(rec: dict) -> dict:
    return {"group": text(rec, "group", 64), "name": text(rec, "name", 64)}


def parse_product(rec: dict) -> dict:
    attributes = rec.get("attributes")
    if isinstance(attributes, str):  # CSV: a JSON object in the cell
        if attributes.strip() == "":
            attributes = None
        else:
            try:
                attributes = json.loads(attributes)
            except ValueError:
                raise RecordError(f"attributes is not a JSON object: {attributes[:40]!r}") from None
    if attributes is not None and not isinstance(attributes, dict):
        raise RecordError("attributes must be an object")
    return {
        "sku": text(rec, "sku", 64),
        "name": text(rec, "name", 200),
        "category": text(rec, "category", 64),
        "price": money(rec, "price"),
        "attributes": _canonical_json(attributes) if attributes is not None else None,
    }


def parse_customer(rec: dict) -> dict:
    return {
        "keys": identity_keys(rec),
        "name": text(rec, "name", 100),
        "gender": integer(rec, "gender", lo=0, hi=2),
        "birthday": day(rec, "birthday"),
        "baby_birthday": day(rec, "baby_birthday"),
        "due_date": day(rec, "due_date"),
        "member_level": text(rec, "member_level", 32, required=False),
        "points": integer(rec, "points", lo=-(2**31), hi=2**31 - 1),
    }


def parse_follow(rec: dict) -> dict:
    return {
        "userid": text(rec, "userid", 64),
        "external_userid": text(rec, "external_userid", 128),
        "added_at": when(rec, "added_at"),
        "state": text(rec, "state", 64, required=False),
        "remark": text(rec, "remark", 100, required=False),
    }


def parse_customer_tag(rec: dict) -> dict:
    tag = text(rec, "tag", 129)
    group, sep, name = tag.partition("/")
    if not sep or not group.strip() or not name.strip():
        raise RecordError(f"tag must be \"group/name\", not {tag!r}")
    return {"external_userid": text(rec, "external_userid", 128), "group": group.strip(), "name": name.strip()}


def parse_order(rec: dict) -> dict:
    customer = rec.get("customer")
    if customer is None:
        raise RecordError("customer is missing (an object of identity keys)")
    if isinstance(customer, dict):
        keys = identity_keys(customer, "customer ")
    else:
        raise RecordError("customer must be an object of identity keys")
    items = rec.get("items")
    if not isinstance(items, list) or not items:
        raise RecordError("items must be a non-empty list")
    lines = []
    for i, item in enumerate(items, 1):
        if not isinstance(item, dict):
            raise RecordError(f"items[{i}] must be an object")
        try:
            lines.append((
                text(item, "sku", 64), text(item, "name", 200), text(item, "category", 64),
                integer(item, "qty", required=True, lo=-(2**31), hi=2**31 - 1), money(item, "price"),
            ))
        except RecordError as exc:
            raise RecordError(f"items[{i}].{exc}") from None
    return {
        "order_no": text(rec, "order_no", 64),
        "channel": text(rec, "channel", 20),
        "store": text(rec, "store", 40, required=False),
        "paid_at": when(rec, "paid_at"),
        "amount": money(rec, "amount"),
        "keys": keys,
        "items": lines,
    }


PARSERS = {
    "store": parse_store, "guide": parse_guide, "tag": parse_tag, "product": parse_product,
    "customer": parse_customer, "follow": parse_follow, "customer_tag": parse_customer_tag, "order": parse_order,
}


def parse_record(rec) -> tuple[str, dict]:
    """(type, normalized record); RecordError with a message prefixed by the type when it has one."""
    if not isinstance(rec, dict):
        raise RecordError("a record must be a JSON object")
    rtype = rec.get("type")
    parser = PARSERS.get(rtype) if isinstance(rtype, str) else None
    if parser is None:
        raise RecordError(f"unknown type: {rtype!r}" if rtype is not None else "type is missing")
    try:
        return rtype, parser(rec)
    except RecordError as exc:
        raise RecordError(f"{rtype}: {exc}") from None


def _canonical_json(value) -> str:
    # JSON numbers were read as Decimal (exact money); inside free-form attributes they are plain numbers.
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=_plain)


def _plain(value):
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and "." not in str(value) else float(value)
    return str(value)
