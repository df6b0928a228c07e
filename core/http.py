"""Small HTTP helpers shared by the JSON APIs."""
from __future__ import annotations

from flask import jsonify


def json_error(status: int, message: str, **extra):
    """A JSON error answer: `{"error": <message for the user, in Chinese>, ...extra}` with `status`."""
    resp = jsonify(error=message, **extra)
    resp.status_code = status
    return resp
