"""Tests run against the real PostgreSQL and Redis (see .ci/run), never SQLite or the Redis stand-in.

The schema is built once per session through the Alembic migrations (so they are tested too); every
test starts from empty tables and an empty Redis database.
"""
from __future__ import annotations

import os

import pytest
from sqlalchemy import text

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")

TEST_SETTINGS = {
    "DEMO": False,
    "DATABASE_URL": TEST_DATABASE_URL,
    "REDIS_URL": TEST_REDIS_URL,
    "SECRET_KEY": "test-secret-key-0123456789",
    "APP_TIMEZONE": "Asia/Shanghai",
    "WECOM_CORP_ID": "wwtestcorp0001",
    "WECOM_AGENT_ID": "1000002",
    "WECOM_SECRET": "test-secret",
    "WECOM_TOKEN": "testtoken",
    "WECOM_AES_KEY": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
    "WECOM_API_BASE": "http://127.0.0.1:5999/cgi-bin/",
    "TESTING": True,
}


@pytest.fixture(scope="session")
def app():
    from app import create_app
    from core.cli import alembic_config
    from alembic import command

    application = create_app(TEST_SETTINGS)
    with application.app_context():
        from core.db import db

        with db.engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        command.upgrade(alembic_config(), "head")
    return application


@pytest.fixture(autouse=True)
def _clean_state(request):
    if "app" not in request.fixturenames:
        yield
        return
    application = request.getfixturevalue("app")
    from core.db import db
    from core.redis_store import rstore
    from models import Base

    rstore.client.flushdb()
    application.extensions.pop("knowledge_library", None)  # built from the previous test's tables
    application.extensions.pop("recommend_catalog", None)  # products cached from the previous test
    with application.app_context():
        tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
        with db.engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    ctx = application.app_context()
    ctx.push()
    try:
        yield
    finally:
        db.session.remove()
        ctx.pop()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()
