from __future__ import annotations

import pytest

from bot.wecom_client import reset_wecom
from tests.conftest import TEST_SETTINGS
from wecom_standin import Corp, StandinServer

CRYPTO = {"token": TEST_SETTINGS["WECOM_TOKEN"], "aes_key": TEST_SETTINGS["WECOM_AES_KEY"],
          "corp_id": TEST_SETTINGS["WECOM_CORP_ID"]}


@pytest.fixture
def standin(app):
    corp = Corp(corp_id=TEST_SETTINGS["WECOM_CORP_ID"], secret=TEST_SETTINGS["WECOM_SECRET"],
                agent_id=TEST_SETTINGS["WECOM_AGENT_ID"])
    server = StandinServer(corp, **CRYPTO).start()
    old = app.config["WECOM_API_BASE"]
    app.config["WECOM_API_BASE"] = server.base_url
    reset_wecom(app)
    try:
        yield server
    finally:
        server.stop()
        app.config["WECOM_API_BASE"] = old
        reset_wecom(app)


@pytest.fixture
def chain(app, standin):
    from tests.sidebar.factories import build_chain

    return build_chain(standin.corp)


@pytest.fixture
def daytime(monkeypatch):
    """Marketing sends are refused in quiet hours; pin the clock of the touch caps to 10:00 local today."""
    from tests.sidebar.factories import daytime as at_ten

    monkeypatch.setattr("tasks.quota.utcnow", at_ten)
    return at_ten()
