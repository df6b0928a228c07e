"""The manager page's sections beyond the rankings: 内容效果, 话术效果 and 导购漏斗 show the same numbers as the
CLI (`report funnel --json`, `knowledge stats --json`), scoped to the manager's store (an admin: every store
or ?store=CODE), each table exports as CSV with a BOM, and a guide gets 403."""
from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest

from core.db import db
from core.timeutil import local_today
from models import Guide, ScriptSend
from tests.knowledge.test_api import sign_in
from tests.tasks import factories as f
from tests.tracking.test_links import content, noon, script
from tracking import operations as ops

SECTIONS = ("rank", "trend", "content", "scripts", "guides")


@pytest.fixture()
def world(app):
    """Two stores: in S1 guide a sends the 转奶 article twice (one open, an order 2 days later) and a script;
    in S2 guide b sends both articles (one open, no order) and the same script (followed by an order)."""
    a, b = f.guide("a", name="王丽"), f.guide("b", store_code="S2", name="赵敏")
    boss = f.guide("boss", role="manager", name="店长")
    hq = f.guide("hq", role="admin", store_code="HQ", name="总部")
    zhuannai, video = content(), content("c-video", "门店活动视频", "https://example.com/v/2")
    formula = f.product()
    ca1, ca2, cb1, cb2 = f.customer(a), f.customer(a), f.customer(b), f.customer(b)
    sent = noon(3)
    l1 = ops.create_tracked_link(a, ca1, zhuannai, now=sent)
    ops.record_open(l1.token, now=sent + timedelta(hours=1))
    f.order(ca1, sent + timedelta(days=2), (formula, 2))  # 600.00
    ops.create_tracked_link(a, ca2, zhuannai, now=sent)
    lb1 = ops.create_tracked_link(b, cb1, video, now=sent)
    ops.record_open(lb1.token, now=sent + timedelta(hours=2))
    ops.create_tracked_link(b, cb2, zhuannai, now=sent)
    s1 = script()
    db.session.add_all([ScriptSend(script_id=s1.id, guide_id=a.id, customer_id=ca2.id, sent_at=sent),
                        ScriptSend(script_id=s1.id, guide_id=b.id, customer_id=cb2.id, sent_at=sent)])
    f.order(cb2, sent + timedelta(days=1), (formula, 1))  # 300.00, after b's script
    db.session.commit()
    return {"a": a, "b": b, "boss": boss, "hq": hq}


def cli(runner, *args) -> list[dict]:
    out = runner.invoke(args=[*args, "--json"])
    assert out.exit_code == 0, out.output
    return [json.loads(line) for line in out.output.splitlines()]


def exported(client, table, **query) -> list[dict]:
    resp = client.get(f"/manager/export/{table}.csv", query_string=query)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.mimetype == "text/csv" and "attachment" in resp.headers["Content-Disposition"]
    body = resp.get_data(as_text=True)
    assert body.startswith("\ufeff")  # Excel reads the Chinese as UTF-8
    return list(csv.DictReader(io.StringIO(body[1:])))


def week_of_the_sends():
    """The page's query for the week holding the sends, and the CLI's --since/--until for the same days."""
    D = noon(3).astimezone(f.TZ).date()
    first = D - timedelta(days=D.weekday())
    return ({"period": "week", "date": D.isoformat()},
            ["--since", first.isoformat(), "--until", (first + timedelta(days=7)).isoformat()])


def test_sections_show_the_clis_numbers_for_the_managers_store(app, client, runner, world):
    q, window = week_of_the_sends()
    sign_in(client, world["boss"])

    # 内容效果: the manager's store only (S1: two sends of 转奶, one opened and converted).
    expected = cli(runner, "report", "funnel", "--by", "content", "--store", "S1", *window)
    rows = exported(client, "content", **q)
    assert [(r["key"], int(r["sent"]), int(r["opened"]), int(r["converted"]), r["gmv"]) for r in rows] == \
        [(e["key"], e["sent"], e["opened"], e["converted"], e["gmv"]) for e in expected] == \
        [("c-zhuannai", 2, 1, 1, "600.00")]
    html = client.get("/manager/", query_string={"tab": "content", **q}).get_data(as_text=True)
    assert "转奶七日法图解" in html and "门店活动视频" not in html and "¥600.00" in html and "50.0%" in html

    # 话术效果: a's send to a customer with no order in S1; b's (S2) is not the manager's.
    expected = cli(runner, "knowledge", "stats", "--store", "S1", *window)
    rows = exported(client, "scripts", **q)
    assert [(r["external_id"], int(r["sends"]), int(r["converted"]), r["gmv"]) for r in rows] == \
        [(e["external_id"], e["sends"], e["converted"], e["gmv"]) for e in expected] == \
        [("s-zhuannai", 1, 0, "0.00")]
    html = client.get("/manager/", query_string={"tab": "scripts", **q}).get_data(as_text=True)
    assert "转奶方法" in html and "¥0.00" in html

    # 导购漏斗: only S1's guides, whatever ?store= says.
    rows = exported(client, "guides", store="S2", **q)
    expected = cli(runner, "report", "funnel", "--by", "guide", "--store", "S1", *window)
    assert [(r["key"], int(r["sent"]), int(r["converted"])) for r in rows] == \
        [(e["key"], e["sent"], e["converted"]) for e in expected] == [("a", 2, 1)]
    html = client.get("/manager/", query_string={"tab": "guides", "store": "S2", **q}).get_data(as_text=True)
    assert "王丽" in html and "赵敏" not in html


def test_admin_sees_every_store_or_one(app, client, runner, world):
    sign_in(client, world["hq"])
    q, window = week_of_the_sends()
    for table, args, key in (("content", ["report", "funnel", "--by", "content"], "key"),
                             ("guides", ["report", "funnel", "--by", "guide"], "key"),
                             ("scripts", ["knowledge", "stats"], "external_id")):
        every = cli(runner, *args, *window)
        rows = exported(client, table, **q)
        assert rows and [r[key] for r in rows] == [e[key] for e in every]
        for row, e in zip(rows, every):  # every column, as the CLI prints it
            assert row == {k: "" if v is None else str(v) for k, v in e.items() if k != "by"}
    scripts = exported(client, "scripts", **q)
    assert [(r["sends"], r["converted"], r["gmv"]) for r in scripts] == [("2", "1", "300.00")]  # both stores
    assert [r["key"] for r in exported(client, "guides", **q)] == ["a", "b"]
    only_s2 = exported(client, "guides", store="S2", **q)
    assert [r["key"] for r in only_s2] == ["b"]
    assert [r["key"] for r in cli(runner, "report", "funnel", "--by", "guide", "--store", "S2", *window)] == ["b"]
    html = client.get("/manager/", query_string={"tab": "content", "store": "S2", **q}).get_data(as_text=True)
    assert "门店活动视频" in html and "¥600.00" not in html
    assert client.get("/manager/", query_string={"tab": "guides", "store": "S9"}).status_code == 404
    assert client.get("/manager/export/guides.csv", query_string={"store": "S9"}).status_code == 404
    stores = exported(client, "stores", **q)
    assert {r["store"] for r in stores} >= {"S1", "S2"}
    out = runner.invoke(args=["report", "funnel", "--store", "S9"])
    assert out.exit_code != 0 and "no store with code 'S9'" in out.output


def test_roles_tabs_and_exports(app, client, world):
    for tab in SECTIONS:
        assert client.get("/manager/", query_string={"tab": tab}).status_code == 302  # signed out: to login
    sign_in(client, world["a"])
    for tab in SECTIONS:
        assert client.get("/manager/", query_string={"tab": tab}).status_code == 403
    for table in ("rank", "stores", "trend", "content", "scripts", "guides"):
        assert client.get(f"/manager/export/{table}.csv").status_code == 403
    sign_in(client, world["boss"])
    for tab in SECTIONS:
        resp = client.get("/manager/", query_string={"tab": tab})
        assert resp.status_code == 200 and f'data-tab="{tab}" class="is-on"' in resp.get_data(as_text=True)
    # ‹ › step a period back and forth; there is no step into the future.
    html = client.get("/manager/", query_string={"tab": "content", "period": "day"}).get_data(as_text=True)
    yesterday = (local_today() - timedelta(days=1)).isoformat()
    assert f"date={yesterday}" in html and 'data-step="prev"' in html and 'data-step="next"' not in html
    html = client.get("/manager/", query_string={"tab": "content", "period": "day", "date": yesterday}
                      ).get_data(as_text=True)
    assert f"date={local_today().isoformat()}" in html and 'data-step="next"' in html and "tab=content" in html
    assert client.get("/manager/", query_string={"tab": "money"}).status_code == 400
    assert client.get("/manager/export/secrets.csv").status_code == 404
    trend = exported(client, "trend")
    assert len(trend) == 30 and trend[-1]["date"] == local_today().isoformat()
    assert exported(client, "stores") == []  # a manager gets no store ranking
    header = client.get("/manager/export/content.csv").get_data(as_text=True).splitlines()[0]
    assert header == "\ufeffkey,label,sent,opened,opens,converted,orders,gmv,open_rate,conversion_rate"


def test_a_manager_without_a_store_sees_nothing_of_the_chain(app, client, world):
    lost = Guide(userid="boss0", name="无店店长", role="manager", store_id=None)
    db.session.add(lost)
    db.session.commit()
    q, _ = week_of_the_sends()
    sign_in(client, lost)
    for table in ("rank", "stores", "trend", "content", "scripts", "guides"):
        assert exported(client, table, **q) == [], table
    assert client.get("/manager/data.json").json["trend"] == []  # not the chain's trend
    html = client.get("/manager/", query_string={"tab": "guides", **q}).get_data(as_text=True)
    assert "王丽" not in html and "赵敏" not in html


def test_an_export_writes_a_name_excel_would_run_as_a_formula_as_text_and_figures_as_figures(app, client, world):
    world["a"].name = "=HYPERLINK(\"http://x\",\"王丽\")"
    db.session.commit()
    sign_in(client, world["hq"])
    q, _ = week_of_the_sends()
    rows = exported(client, "guides", **q)
    a = next(r for r in rows if r["key"] == "a")
    assert a["label"] == "'=HYPERLINK(\"http://x\",\"王丽\")"
    assert a["gmv"] == "600.00" and a["orders"] == "1"  # figures are not touched
    assert [c for r in rows for c in r.values() if c and c[0] in "=+@"] == []
