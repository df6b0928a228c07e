"""The manager page in a real browser (headless Chromium, as tests/sidebar/test_browser.py): the vendored
ECharts draws the trend, the ranking lists the store's guides."""
from __future__ import annotations

from tests.sidebar.conftest import chain, standin  # noqa: F401 (fixtures)
from tests.sidebar.test_browser import SHOTS, live_server, page, pytestmark  # noqa: F401 (fixtures, chromium skip)


def test_manager_page_draws_the_trend(app, chain, standin, live_server, page):
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{live_server}/sidebar/")
    page.click('[data-guide="manager01"]')  # the demo picker signs the store manager in
    page.goto(f"{live_server}/manager/?period=month")
    page.wait_for_selector("#trend canvas")
    assert page.evaluate("typeof echarts") == "object" and errors == []
    table = page.inner_text("table")
    assert "王丽" in table and "李娜" in table and "赵敏" not in table  # S1's guides, not S2's
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "manager.png"), full_page=True)
