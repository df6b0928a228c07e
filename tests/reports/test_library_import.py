"""资料导入 on the manager page: head office uploads a library file and sees what the `… import` command would
print (counts, or every bad line with its reason in Chinese and "没有导入任何内容"), all or nothing; dry runs
keep nothing; only admins get there, with the CSRF token; a file over the limit is refused; the exports
download what the commands write."""
from __future__ import annotations

import csv
import io
import json

import yaml
from openpyxl import Workbook, load_workbook
from sqlalchemy import func, select

from core.db import db
from knowledge import service
from models import CommissionRate, CouponEvent, CouponTemplate, Playbook, Script, Vocabulary
from reports import views
from tests.commerce_helpers import TEMPLATES
from tests.knowledge.factories import LIBRARY
from tests.knowledge.test_api import sign_in
from tests.tasks import factories as f

CSRF = "csrf-token-for-tests"


def jsonl(records) -> bytes:
    return "".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n"
                   for r in records).encode()


def upload(client, library, name, body: bytes, *, dry_run=False, csrf=CSRF):
    form = {"library": library, "file": (io.BytesIO(body), name)}
    if csrf:
        form["csrf_token"] = csrf
    if dry_run:
        form["dry_run"] = "1"
    return client.post("/manager/import", data=form, content_type="multipart/form-data")


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def top_ids(client, q):
    resp = client.get("/api/suggest", query_string={"q": q, "top": 1})
    assert resp.status_code == 200, resp.json
    return [s["external_id"] for s in resp.json["scripts"]]


def admin(client):
    hq = f.guide("hq", role="admin", store_code="HQ")
    db.session.commit()
    sign_in(client, hq)
    return hq


def test_an_admin_imports_a_jsonl_and_an_xlsx_and_suggestions_use_them_at_once(app, client):
    admin(client)
    page = client.get("/manager/import")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "资料导入" in html and 'name="csrf_token" value="csrf-token-for-tests"' in html
    for label in ("话术/素材库", "优惠券模板", "提成比例", "任务玩法"):
        assert label in html
    assert "资料导入" in client.get("/manager/").get_data(as_text=True)  # the admin's tab bar links to it
    assert top_ids(client, "宝宝三天没拉粑粑了") == []  # the library is built (empty) in this process

    resp = upload(client, "knowledge", "kb.jsonl", jsonl(LIBRARY))
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200, html
    assert "话术/素材库：已导入 8 条" in html  # the CLI's "8 records imported", per kind below
    assert "话术 <b>5</b>" in html and "素材 <b>2</b>" in html and "同义词/新词 <b>1</b>" in html
    assert count(Script) == 5
    assert top_ids(client, "宝宝三天没拉粑粑了😭") == ["s-bianmi"]  # the version bump rebuilt the index

    book = Workbook()
    sheet = book.active
    sheet.title = "话术"
    sheet.append(["external_id", "title", "category", "body", "tags"])
    sheet.append(["s-wenshui", "冲奶水温", "喂养", "冲奶粉的水温以40到50度为宜，太烫会破坏营养。", "水温|冲奶"])
    words = book.create_sheet("同义词")
    words.append(["term", "variants"])
    words.append(["水温", "多少度|几度"])
    buf = io.BytesIO()
    book.save(buf)
    resp = upload(client, "knowledge", "门店话术.xlsx", buf.getvalue())
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200, html
    assert "已导入 2 条" in html and "话术 <b>1</b>" in html and "门店话术.xlsx" in html
    assert count(Script) == 6 and count(Vocabulary) == 2
    assert top_ids(client, "冲奶粉用几度的水") == ["s-wenshui"]


def test_a_file_with_bad_lines_lists_each_and_imports_nothing(app, client):
    admin(client)
    upload(client, "knowledge", "kb.jsonl", jsonl(LIBRARY[:2]))
    records = [dict(LIBRARY[0], title="改过的标题"), {"kind": "script", "external_id": "x1", "title": "缺正文"},
               '{"kind": "script", "external_id": ', LIBRARY[2],
               {"kind": "content", "external_id": "c9", "title": "无链接文章", "content_type": "article"}]
    resp = upload(client, "knowledge", "bad.jsonl", jsonl(records))
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert "3 处错误，没有导入任何内容" in html
    # Every bad line with the reason the CLI prints for it, in Chinese (more in test_import_reasons.py).
    assert "<td>第 2 行</td><td>话术：缺少正文（body）</td>" in html
    assert "<td>第 3 行</td><td>JSON 格式错误" in html
    assert "<td>第 5 行</td><td>素材：缺少链接（url）" in html
    assert count(Script) == 2  # s-chima on line 4 was good, but nothing of the file was kept
    assert db.session.scalar(select(Script.title).where(Script.external_id == "s-zhuannai")) == "转奶方法"

    book = Workbook()
    book.active.title = "素材"
    book.active.append(["external_id", "title", "content_type", "url"])
    book.active.append(["c1", "无链接", "article", None])
    buf = io.BytesIO()
    book.save(buf)
    html = upload(client, "knowledge", "素材.xlsx", buf.getvalue()).get_data(as_text=True)
    assert "工作表“素材”第 2 行" in html and "没有导入任何内容" in html

    resp = upload(client, "commission", "rates.csv", "category,rate\n奶粉,3%\n纸尿裤,150%\n".encode())
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400 and "<td>第 3 行</td><td>提成比例：提成比例（rate）须在 0 到 1 之间" in html
    assert count(CommissionRate) == 0

    text = "external_id,title,body\ns-1,转奶,转奶要慢慢来\n"
    utf16 = upload(client, "knowledge", "话术.csv", text.encode("utf-16"))  # Excel's "Unicode text"
    assert utf16.status_code == 400
    assert "话术.csv 既不是 UTF-8 也不是 GBK 编码的文本" in utf16.get_data(as_text=True) and count(Script) == 2
    gbk = upload(client, "knowledge", "话术.csv", text.encode("gbk"))  # Excel's plain "CSV" in China
    assert "已导入 1 条" in gbk.get_data(as_text=True) and count(Script) == 3  # the name says 话术

    html = upload(client, "coupons", "coupons.xlsx", b"PK").get_data(as_text=True)  # the CLI's own refusal
    assert "coupons.xlsx：请用 .jsonl 或 .csv 文件" in html and "没有导入任何内容" in html


def test_files_that_broke_the_page_are_refused_by_name(app, client, monkeypatch):
    admin(client)
    # A long Chinese file name (over 255 bytes as UTF-8), a workbook that is not one, NUL characters.
    resp = upload(client, "knowledge", "话术" * 60 + ".jsonl", jsonl(LIBRARY[:1]))
    assert resp.status_code == 200 and "已导入 1 条" in resp.get_data(as_text=True)
    resp = upload(client, "knowledge", "话术.xlsx", b"not a zip at all")
    assert resp.status_code == 400 and "不是能读取的 Excel 工作簿" in resp.get_data(as_text=True)
    nul = dict(LIBRARY[1], body="转奶\u0000慢慢来")
    resp = upload(client, "knowledge", "kb.jsonl", jsonl([LIBRARY[2], nul]))
    assert resp.status_code == 400 and "<td>第 2 行</td><td>含有空字符" in resp.get_data(as_text=True)
    resp = upload(client, "knowledge", "话术.csv", "external_id,title,body\ns-9,转奶,转奶\x00慢慢来\n".encode())
    assert resp.status_code == 400 and "含有空字符" in resp.get_data(as_text=True)
    yaml_nul = "- key: k1\n  name: \"生日\\0关怀\"\n  steps:\n    - day: 0\n      title: 问候\n".encode()
    resp = upload(client, "playbooks", "playbooks.yaml", yaml_nul)
    assert resp.status_code == 400 and "<td>第 1 个玩法</td><td>含有空字符" in resp.get_data(as_text=True)
    assert count(Script) == 1  # only the first, good file
    # A file of thousands of bad lines lists the first ones and says how many more there are.
    monkeypatch.setattr(views, "MAX_LISTED", 3)
    html = upload(client, "knowledge", "kb.jsonl", jsonl(["{"] * 5)).get_data(as_text=True)
    assert "5 处错误，没有导入任何内容" in html and html.count("JSON 格式错误") == 3
    assert "另有 2 处错误没有列出" in html


def test_dry_run_writes_nothing_and_the_other_libraries_import(app, client):
    hq = admin(client)
    resp = upload(client, "knowledge", "kb.jsonl", jsonl(LIBRARY), dry_run=True)
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "检查通过：8 条都可以导入（只检查，没有导入任何内容）" in html
    assert count(Script) == 0 and count(Vocabulary) == 0
    resp = upload(client, "coupons", "coupons.jsonl", jsonl(TEMPLATES), dry_run=True)
    assert "检查通过：3 条" in resp.get_data(as_text=True)
    assert count(CouponTemplate) == 0 and count(CouponEvent) == 0

    # No dry run where the command has none: refused, nothing imported.
    resp = upload(client, "playbooks", "pb.jsonl", b'{"key": "k", "name": "n", "steps": [{"day": 0, "title": "t"}]}',
                  dry_run=True)
    assert resp.status_code == 400 and "任务玩法不支持“只检查不导入”" in resp.get_data(as_text=True)
    assert count(Playbook) == 0

    html = upload(client, "coupons", "coupons.jsonl", jsonl(TEMPLATES)).get_data(as_text=True)
    assert "优惠券模板：已导入 3 条" in html and "新建 <b>3</b>" in html
    # Audited as the CLI's import is, with the admin who uploaded.
    assert db.session.scalars(select(CouponEvent.guide_id).where(CouponEvent.type == "template_created")).all() \
        == [hq.id] * 3
    html = upload(client, "commission", "rates.csv", "category,rate\n奶粉,3%\n*,0.05\n".encode()).get_data(as_text=True)
    assert "提成比例：已导入 2 条" in html and count(CommissionRate) == 2
    html = upload(client, "playbooks", "pb.yaml", "- key: new_mom\n  name: 新手妈妈\n  steps:\n"
                  "    - {day: 0, title: 欢迎}\n".encode()).get_data(as_text=True)
    assert "任务玩法：已导入 1 条" in html and count(Playbook) == 1


def test_only_admins_with_the_csrf_token_reach_it(app, client):
    assert client.get("/manager/import").status_code == 302  # signed out: to sign-in
    assert upload(client, "knowledge", "kb.jsonl", jsonl(LIBRARY)).status_code == 401
    assert client.get("/manager/library/commission.csv").status_code == 401
    manager = f.guide("boss1", role="manager")
    guide = f.guide("guide_a")
    db.session.commit()
    for who in (manager, guide):
        sign_in(client, who)
        page = client.get("/manager/import")
        assert page.status_code == 403 and "需要总部管理员权限" in page.get_data(as_text=True)
        assert upload(client, "knowledge", "kb.jsonl", jsonl(LIBRARY)).status_code == 403
        for export in ("knowledge.xlsx", "commission.csv", "playbooks.yaml"):
            assert client.get(f"/manager/library/{export}").status_code == 403
    sign_in(client, manager)
    assert "资料导入" not in client.get("/manager/").get_data(as_text=True)
    assert count(Script) == 0

    admin(client)
    resp = upload(client, "knowledge", "kb.jsonl", jsonl(LIBRARY), csrf=None)
    assert resp.status_code == 403 and "CSRF" in resp.json["error"]
    assert upload(client, "knowledge", "kb.jsonl", jsonl(LIBRARY), csrf="forged").status_code == 403
    assert count(Script) == 0


def test_a_file_over_the_limit_is_refused_clearly(app, client, monkeypatch):
    admin(client)
    monkeypatch.setattr(views, "MAX_UPLOAD", 1024)
    big = jsonl(LIBRARY) * 3  # ~3 KiB: over the limit but inside the request's slack
    resp = upload(client, "knowledge", "kb.jsonl", big)
    assert resp.status_code == 413 and "文件超过 20 MB" in resp.get_data(as_text=True)
    huge = b" " * (1024 + 65 * 1024)  # past the request's limit: refused before the form is read
    resp = upload(client, "knowledge", "kb.jsonl", huge)
    assert resp.status_code == 413 and "文件超过 20 MB" in resp.get_data(as_text=True)
    assert count(Script) == 0


def test_exports_download_what_the_commands_write(app, client):
    admin(client)
    upload(client, "knowledge", "kb.jsonl", jsonl(LIBRARY))
    upload(client, "coupons", "coupons.jsonl", jsonl(TEMPLATES))
    page = client.get("/manager/import").get_data(as_text=True)
    assert 'href="/manager/library/knowledge.xlsx"' in page and 'href="/manager/library/coupons.csv"' in page
    resp = client.get("/manager/library/knowledge.xlsx")
    assert resp.status_code == 200 and "attachment" in resp.headers["Content-Disposition"]
    book = load_workbook(io.BytesIO(resp.data))
    assert book["话术"].max_row == 6  # header and 5 scripts
    lines = client.get("/manager/library/knowledge.jsonl").get_data(as_text=True).splitlines()
    assert len(lines) == 8 and json.loads(lines[0])["kind"] == "script"
    rows = list(csv.DictReader(io.StringIO(client.get("/manager/library/coupons.csv").get_data(as_text=True)
                                           .lstrip("\ufeff"))))
    assert [r["external_id"] for r in rows] == ["C-199-30", "C-90", "C-GIFT"]
    assert client.get("/manager/library/coupons.xlsx").status_code == 404
    assert client.get("/manager/library/commission.xlsx").status_code == 404
    # An export imports back unchanged.
    html = upload(client, "knowledge", "library.xlsx",
                  client.get("/manager/library/knowledge.xlsx").data).get_data(as_text=True)
    assert "已导入 8 条" in html and count(Script) == 5


def test_commission_and_playbooks_download_in_their_import_format_and_upload_back_unchanged(app, client):
    admin(client)
    rates = "category,rate\n奶粉,2%\n辅食,1.25%\n*,4%\n"
    playbooks = ("- key: new_mom\n  name: 新手妈妈\n  segment:\n    baby_stages: [0-6月]\n  steps:\n"
                 "  - {day: 0, title: 欢迎, kind: service, script: b01}\n"
                 "  - {date: 2026-11-11, phase: 爆发, title: 提醒下单}\n")
    upload(client, "commission", "rates.csv", rates.encode())
    upload(client, "playbooks", "pb.yaml", playbooks.encode())
    page = client.get("/manager/import").get_data(as_text=True)
    for export in ("commission.csv", "commission.jsonl", "playbooks.yaml", "playbooks.jsonl"):
        assert f'href="/manager/library/{export}"' in page

    resp = client.get("/manager/library/commission.csv")
    assert resp.status_code == 200 and "attachment" in resp.headers["Content-Disposition"]
    assert resp.headers["Content-Disposition"].endswith(".csv")
    body = resp.get_data(as_text=True).lstrip("\ufeff")
    assert sorted(body.splitlines()[1:]) == sorted(rates.splitlines()[1:]) and body.startswith("category,rate")
    html = upload(client, "commission", "commission.csv", resp.data).get_data(as_text=True)
    assert "提成比例：已导入 3 条" in html and "未变 <b>3</b>" in html

    resp = client.get("/manager/library/playbooks.yaml")
    assert resp.status_code == 200 and resp.mimetype == "application/yaml"
    assert yaml.safe_load(resp.data) == yaml.safe_load(playbooks)
    for export in ("playbooks.yaml", "playbooks.jsonl"):
        body = client.get(f"/manager/library/{export}").data
        html = upload(client, "playbooks", export, body).get_data(as_text=True)
        assert "任务玩法：已导入 1 条" in html
    assert client.get("/manager/library/playbooks.yaml").data == resp.data  # nothing changed
