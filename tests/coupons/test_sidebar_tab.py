"""The sidebar's 优惠券 tab in a real browser (headless Chromium, as tests/sidebar/test_browser.py): the
templates with their state, one tap issues a coupon and sends its text with the tracked link into the chat,
the customer's coupons list it, and a second tap is refused with the reason."""
from __future__ import annotations

from sqlalchemy import select

from core.db import db
from models import Coupon, Touch
from tests.commerce_helpers import daytime, templates  # noqa: F401 (fixture)
from tests.sidebar.conftest import chain, standin  # noqa: F401 (fixtures)
from tests.sidebar.test_browser import SHOTS, live_server, page, pytestmark  # noqa: F401 (fixtures, chromium skip)


def test_coupon_tab_issues_sends_and_refuses(app, chain, standin, live_server, page, daytime):
    templates()
    ext = chain.ext[chain.mine.id]
    page.goto(f"{live_server}/sidebar/")
    page.click('[data-guide="guide01"]')
    page.click(f'[data-customer="{ext}"]')
    page.wait_for_selector("#tab-customer.is-active")

    # The guide's month heads the 任务 tab: 张女士's four orders in the factories are not this month's.
    page.click('.sb-tab[data-tab="tasks"]')
    page.wait_for_selector('#sb-my-month:has-text("本月业绩")')
    assert "订单" in page.inner_text("#sb-my-month") and "提成" in page.inner_text("#sb-my-month")

    page.click('.sb-tab[data-tab="coupons"]')
    gift = page.locator('.sb-coupon[data-coupon="C-GIFT"]')
    gift.wait_for()
    assert "赠：湿巾一包" in gift.inner_text() and "剩 10 张" in gift.inner_text()
    assert "还没有领过券" in page.inner_text("#sb-coupon-held")
    gift.locator('[data-action="coupon-issue"]').click()
    page.wait_for_selector('#sb-demo-sent-list li:has-text("新客礼")')
    sent = page.inner_text("#sb-demo-sent-list")
    db.session.rollback()
    coupon = db.session.scalar(select(Coupon))
    assert coupon is not None and coupon.customer_id == chain.mine.id and coupon.code in sent and "/c/" in sent
    page.wait_for_selector(f'#sb-coupon-held:has-text("{coupon.code}")')
    # Today's marketing message is spent: every template now shows why it cannot be sent, buttons off.
    page.wait_for_selector('.sb-coupon[data-coupon="C-90"]:has-text("今天已收到1条营销消息")')
    assert page.locator('.sb-coupon[data-coupon="C-GIFT"] [data-action="coupon-issue"]').is_disabled()
    assert "每位顾客限领1张" in page.inner_text('.sb-coupon[data-coupon="C-GIFT"]')
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "sidebar-coupons.png"), full_page=True)
    db.session.rollback()
    assert len(db.session.scalars(select(Touch).where(Touch.channel == "coupon")).all()) == 1
