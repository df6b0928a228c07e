"""Time: stored in UTC, read and shown in APP_TIMEZONE."""
from __future__ import annotations

from datetime import date, datetime, time, timezone
from zoneinfo import ZoneInfo

from flask import current_app, has_app_context

UTC = timezone.utc


def app_tz() -> ZoneInfo:
    name = current_app.config["APP_TIMEZONE"] if has_app_context() else "Asia/Shanghai"
    return ZoneInfo(name)


def utcnow() -> datetime:
    return datetime.now(UTC)


def local_today() -> date:
    return datetime.now(app_tz()).date()


def parse_datetime(value: str) -> datetime:
    """ISO 8601; a time without a zone is read in APP_TIMEZONE. Raises ValueError."""
    dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=app_tz())
    return dt.astimezone(UTC)


def parse_date(value: str) -> date:
    return date.fromisoformat(value.strip()[:10]) if "T" in value else date.fromisoformat(value.strip())


def to_local(dt: datetime | None) -> datetime | None:
    return dt.astimezone(app_tz()) if dt else None


def start_of(d: date) -> datetime:
    """The UTC instant at which local day `d` begins."""
    return datetime.combine(d, time.min, tzinfo=app_tz()).astimezone(UTC)
