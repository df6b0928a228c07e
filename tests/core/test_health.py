from sqlalchemy import inspect

from core.db import db


def test_healthz_reports_database_and_redis(client):
    resp = client.get("/healthz")
    assert resp.status_code == 200
    assert resp.json == {"status": "ok", "database": "ok", "redis": "ok"}


def test_healthz_is_503_when_redis_is_down(client, monkeypatch):
    from core.redis_store import rstore

    def broken():
        raise ConnectionError("refused")

    monkeypatch.setattr(rstore.client, "ping", broken)
    resp = client.get("/healthz")
    assert resp.status_code == 503
    assert resp.json["redis"] == "unreachable" and resp.json["database"] == "ok"


def test_migrations_build_every_table_on_postgresql(app):
    tables = set(inspect(db.engine).get_table_names())
    assert {"customers", "customer_identities", "follows", "events", "orders", "callback_inbox"} <= tables
