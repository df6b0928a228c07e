import pytest

from config import ConfigError, check_settings, load_settings

PROD_ENV = {
    "DATABASE_URL": "postgresql://db/guide",
    "SECRET_KEY": "x" * 32,
    "WECOM_CORP_ID": "wwcorp",
    "WECOM_AGENT_ID": "1000002",
    "WECOM_SECRET": "s",
    "WECOM_TOKEN": "tok",
    "WECOM_AES_KEY": "a" * 43,
}


def test_embedded_default_is_demo_with_sqlite():
    settings = load_settings({})
    assert settings["DEMO"] is True
    assert settings["DATABASE_URL"].startswith("sqlite:///")
    assert settings["REDIS_URL"] is None
    check_settings(settings)


def test_production_settings_pass():
    check_settings(load_settings(PROD_ENV))


@pytest.mark.parametrize(
    "change, named",
    [
        ({"WECOM_TOKEN": ""}, "WECOM_TOKEN"),
        ({"WECOM_AES_KEY": "short"}, "WECOM_AES_KEY"),
        ({"WECOM_AGENT_ID": "abc"}, "WECOM_AGENT_ID"),
        ({"APP_TIMEZONE": "Mars/Base"}, "APP_TIMEZONE"),
        ({"SECRET_KEY": ""}, "SECRET_KEY"),
        ({"CALLBACK_SYNC_COMMIT": "sometimes"}, "CALLBACK_SYNC_COMMIT"),
        ({"SUGGEST_CONVERSION_PRIOR": "maybe"}, "SUGGEST_CONVERSION_PRIOR"),
    ],
)
def test_outside_demo_a_bad_setting_is_named(change, named):
    env = {**PROD_ENV, **change}
    with pytest.raises(ConfigError, match=named):
        check_settings(load_settings(env))


def test_callback_sync_commit_off_applies_to_the_inbox_connections_only():
    from flask import Flask
    from sqlalchemy import text

    from core.db import Database
    from tests.conftest import TEST_DATABASE_URL

    app = Flask("sync_commit_check")
    app.config.update(DATABASE_URL=TEST_DATABASE_URL, CALLBACK_SYNC_COMMIT="off")
    database = Database()
    database.init_app(app)
    try:
        with database.autocommit_engine.connect() as conn:
            assert conn.execute(text("SHOW synchronous_commit")).scalar() == "off"
        with database.engine.connect() as conn:
            assert conn.execute(text("SHOW synchronous_commit")).scalar() == "on"
    finally:
        database.engine.dispose()
        database.autocommit_engine.dispose()
