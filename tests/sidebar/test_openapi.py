"""The API is documented at /api/openapi.json: a valid OpenAPI 3 document naming every /api route."""
from __future__ import annotations

import re

from openapi_spec_validator import validate


def test_openapi_document_is_valid(app, client):
    resp = client.get("/api/openapi.json")
    assert resp.status_code == 200
    validate(resp.json)


def test_every_api_route_is_documented(app, client):
    doc = client.get("/api/openapi.json").json
    documented = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    missing = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            if (path, method.lower()) not in documented:
                missing.append(f"{method} {path}")
    assert not missing, f"add these to sidebar/openapi.py: {missing}"
