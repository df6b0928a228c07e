"""The manager page in a real browser (headless Chromium at a phone's 360 px, as tests/sidebar/test_browser.py):
each section opens from the tab bar, fits the phone's width (wide tables scroll inside their card, not the
page), the vendored ECharts draws the trend, and a screenshot of each lands in tests/screenshots/."""
from __future__ import annotations

from datetime import timedelta

from core.db import db
from models import ScriptSend
from tests.sidebar.conftest import chain, standin  # noqa: F401 (fixtures)
from tests.sidebar.test_browser import SHOTS, live_server, page, pytestmark  # noqa: F401 (fixtures, chromium skip)
from tests.tasks import factories as f
from tests.tracking.test_links import content, noon, script
from tracking import operations as ops


def test_manager_page_sections_at_phone_width(app, chain, standin, live_server, page):
    # Something to show in the funnels: 王丽 sends an article (opened, bought 1 day later) and a script today.
    link = ops.create_tracked_link(chain.guide, chain.mine, content(), now=noon(0) - timedelta(hours=2))
    ops.record_open(link.token, now=noon(0) - timedelta(hours=1))
    f.order(chain.mine, noon(0), (f.product(), 1))
    db.session.add(ScriptSend(script_id=script().id, guide_id=chain.guide.id,
                              customer_id=chain.mine.id, sent_at=noon(0) - timedelta(hours=3)))
    ops.create_tracked_link(chain.colleague, chain.colleagues, content("c-video", "门店活动视频"),
                            now=noon(0) - timedelta(hours=2))  # 李娜's: not opened
    db.session.commit()

    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{live_server}/sidebar/")
    page.click('[data-guide="manager01"]')  # the demo picker signs the store manager in
    page.goto(f"{live_server}/manager/?period=month")
    assert page.evaluate("innerWidth") == 360
    SHOTS.mkdir(exist_ok=True)
    expected = {"rank": ("王丽", "李娜"), "trend": (), "content": ("转奶七日法图解", "门店活动视频", "100.0%"),
                "scripts": ("转奶方法",), "guides": ("王丽", "李娜")}
    for tab, texts in expected.items():
        page.click(f'.mg-tabs [data-tab="{tab}"]')
        page.wait_for_selector(f'.mg-tabs [data-tab="{tab}"].is-on')
        # WeUI is applied, and nothing pushes the page wider than the phone.
        assert page.evaluate("getComputedStyle(document.body).getPropertyValue('--weui-BRAND').trim()") != ""
        assert page.evaluate("document.documentElement.scrollWidth") <= 360, tab
        body = page.inner_text(".mg-page")
        assert all(t in body for t in texts), (tab, body)
        assert "赵敏" not in body  # S2's guide is not the manager's
        if tab == "trend":
            page.wait_for_selector("#trend canvas")
            assert page.evaluate("typeof echarts") == "object"
            page.wait_for_timeout(500)  # the chart's 300 ms animation, for the screenshot
        else:
            assert page.is_visible(f'[data-csv="{tab}"]')
        page.screenshot(path=str(SHOTS / f"manager-{tab}.png"), full_page=True)
    # Tapping a header sorts by it: 成交 largest first, then smallest first.
    assert page.inner_text("#guides tbody tr:first-child td:first-child") == "王丽"
    page.click('#guides th:has-text("成交")')
    assert page.inner_text("#guides tbody tr:first-child td:first-child") == "王丽"
    page.click('#guides th:has-text("成交")')
    assert page.inner_text("#guides tbody tr:first-child td:first-child") == "李娜"
    assert page.get_attribute('#guides th:has-text("成交")', "aria-sort") == "ascending"
    page.click('[data-step="prev"]')  # last month, same tab
    page.wait_for_selector('.mg-tabs [data-tab="guides"].is-on')
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    assert errors == []

    # Head office: on a phone the store picker and both rankings still fit; on a desktop every store, the
    # store ranking beside the guides', a store picker.
    page.goto(f"{live_server}/sidebar/demo")
    page.click('[data-guide="admin01"]')
    page.goto(f"{live_server}/manager/?period=month")
    assert page.is_visible('select[name="store"]') and page.is_visible("#stores")
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    page.screenshot(path=str(SHOTS / "manager-admin.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 800})
    page.reload()
    assert "全部门店" in page.inner_text("h1") and page.is_visible('[data-csv="stores"]')
    assert "赵敏" in page.inner_text("#rank")
    page.select_option('select[name="store"]', "S2")
    page.click(".mg-filter button")
    page.wait_for_selector("h1:has-text('门店S2')")
    assert "王丽" not in page.inner_text("#rank") and "赵敏" in page.inner_text("#rank")
    page.screenshot(path=str(SHOTS / "manager-desktop-admin.png"), full_page=True)
    assert errors == []


def test_head_office_imports_a_library_file_from_the_phone(app, chain, standin, live_server, page, tmp_path):
    from sqlalchemy import func, select

    from models import Script
    from tests.knowledge.factories import LIBRARY, write_jsonl
    from tests.sidebar.test_browser import _fresh

    scripts_before = db.session.scalar(select(func.count()).select_from(Script))
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{live_server}/sidebar/demo")
    page.click('[data-guide="admin01"]')
    page.goto(f"{live_server}/manager/")
    page.click('.mg-tabs [data-tab="import"]')
    page.wait_for_selector('.mg-tabs [data-tab="import"].is-on')
    # 任务玩法 has no dry run: the box is switched off while it is chosen.
    page.check('input[name="library"][value="playbooks"]')
    assert page.is_disabled('input[name="dry_run"]')
    page.check('input[name="library"][value="knowledge"]')
    assert page.is_enabled('input[name="dry_run"]')
    assert page.get_attribute('input[type="file"]', "accept") == ".jsonl,.csv,.xlsx"

    bad = [LIBRARY[0], {"kind": "script", "external_id": "x1", "title": "缺正文"}]
    page.set_input_files('input[type="file"]', write_jsonl(tmp_path / "bad.jsonl", bad))
    page.click('#import button[type="submit"]')
    page.wait_for_selector("#outcome")
    outcome = page.inner_text("#outcome")
    assert "没有导入任何内容" in outcome and "第 2 行" in outcome and "缺少正文（body）" in outcome
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    page.screenshot(path=str(SHOTS / "manager-import-rejected.png"), full_page=True)

    new = [dict(r, external_id=f"web-{r['external_id']}") if "external_id" in r else r for r in LIBRARY]
    page.set_input_files('input[type="file"]', write_jsonl(tmp_path / "kb.jsonl", new))
    page.click('#import button[type="submit"]')
    page.wait_for_selector("#outcome .mg-ok")
    assert "已导入 8 条" in page.inner_text("#outcome")
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    page.screenshot(path=str(SHOTS / "manager-import.png"), full_page=True)
    _fresh()
    assert db.session.scalar(select(func.count()).select_from(Script)) == scripts_before + 5
    assert page.is_visible('[data-export="knowledge.xlsx"]')
    assert errors == []


def test_head_office_erases_a_customer_from_the_manager_page(app, chain, standin, live_server, page):
    from sqlalchemy import select

    from models import AuditEntry, Customer
    from tests.sidebar.test_browser import _fresh

    errors, dialogs = [], []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{live_server}/sidebar/demo")
    page.click('[data-guide="admin01"]')
    page.goto(f"{live_server}/manager/")
    page.fill('#erase-find input[name="q"]', "13812341234")  # 张女士's mobile, as she gave it on the phone
    page.click('#erase-find button')
    page.wait_for_selector(".mg-erase__who")
    who = page.inner_text(".mg-erase__who p")
    assert f"#{chain.mine.id} 张** · 138****1234 · 门店S1 · 订单 4 笔（按手机号找到）" == who
    assert "张女士" not in page.inner_text(".mg-page") and "13812341234" not in page.content()
    assert page.evaluate("document.documentElement.scrollWidth") <= 360

    page.click('.mg-erase__who button')  # no reason yet
    assert "请填写删除原因" in page.inner_text("#erase-message")
    page.fill('.mg-erase__who input[name="reason"]', "顾客来电申请删除（工单 PIPL-12）")

    def answer(dialog, accept):
        dialogs.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    page.once("dialog", lambda d: answer(d, False))  # thought better of it: nothing happens
    page.click('.mg-erase__who button')
    assert dialogs and f"确定删除顾客 #{chain.mine.id}（张**，138****1234）的个人信息吗" in dialogs[0]
    _fresh()
    assert db.session.get(Customer, chain.mine.id).erased_at is None

    page.once("dialog", lambda d: answer(d, True))
    page.click('.mg-erase__who button')
    page.wait_for_selector("#erase-message.is-ok")
    assert page.inner_text("#erase-message") == "已删除该顾客的个人信息；订单与业绩统计保留"
    assert page.inner_text(".mg-erase__who button") == "已删除"
    page.screenshot(path=str(SHOTS / "manager-erase.png"), full_page=True)
    _fresh()
    assert db.session.get(Customer, chain.mine.id).name == "已注销用户"
    entry = db.session.scalar(select(AuditEntry))
    assert (entry.actor, entry.customer_id, entry.reason) == ("guide:admin01", chain.mine.id,
                                                               "顾客来电申请删除（工单 PIPL-12）")

    page.click('#erase-find button')  # the same number again: nobody holds it now
    page.wait_for_selector("#erase-message.is-error")
    assert "没有找到" in page.inner_text("#erase-message") and page.query_selector(".mg-erase__who") is None
    assert errors == []
