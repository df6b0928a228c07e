"""Small HTTP helpers shared by the JSON APIs and pages."""
from __future__ import annotations

from datetime import date

from flask import abort, jsonify, request

from core.timeutil import local_today


def json_error(http_status: int, message: str, /, **extra):
    """A JSON error answer: `{"error": <message for the user, in Chinese>, ...extra}` with `http_status`
    (positional, so any field may ride along, `status` and `code` too)."""
    resp = jsonify(error=message, **extra)
    resp.status_code = http_status
    return resp


_TODAY = object()


def query_date(name: str = "date", *, page: bool = False, default=_TODAY) -> date | None:
    """The `?<name>=YYYY-MM-DD` query parameter; `default` (today, local, unless given) when it is absent or
    empty. A bad value ends the request with a 400 naming it: a JSON error for the APIs, the plain error
    page with `page=True`."""
    value = request.args.get(name)
    if not value:
        return local_today() if default is _TODAY else default
    try:
        return date.fromisoformat(value)
    except ValueError:
        message = f"{name} 不是有效日期（YYYY-MM-DD）：{value[:40]}"
        if page:
            abort(400, message)  # werkzeug escapes it on the page
        abort(json_error(400, message))
