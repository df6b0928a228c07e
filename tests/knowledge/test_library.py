"""The library as operations teams keep it: import (JSONL, CSV, Excel), export, and what is suggested."""
from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

from openpyxl import Workbook, load_workbook
from sqlalchemy import func, select

from app import create_app
from core.db import db
from core.timeutil import local_today
from knowledge import operations, service
from models import Content, Script, Vocabulary
from tests.conftest import TEST_SETTINGS
from tests.knowledge.factories import LIBRARY, write_jsonl


def load(tmp_path, records=LIBRARY, runner=None):
    path = write_jsonl(tmp_path / "kb.jsonl", records)
    return operations.import_library(operations.read_library_file(path))


def top_ids(text, n=3):
    return [s["external_id"] for s in service.suggest(text, top=n)["scripts"]]


def test_import_then_colloquial_question_finds_its_script(app, runner, tmp_path):
    path = write_jsonl(tmp_path / "kb.jsonl", LIBRARY)
    result = runner.invoke(args=["knowledge", "import", path])
    assert result.exit_code == 0, result.output
    assert "script" in result.output and "5" in result.output
    assert db.session.scalar(select(func.count()).select_from(Script)) == 5
    assert db.session.scalar(select(func.count()).select_from(Content)) == 2
    assert top_ids("宝宝三天没拉粑粑了😭", 1) == ["s-bianmi"]
    assert top_ids("尿不湿勒出红印子了要换多大的", 1) == ["s-chima"]


def test_a_stores_own_synonym_reaches_the_script(app, tmp_path):
    load(tmp_path)
    assert "s-chima" not in top_ids("小飞象有货吗", 1)
    load(tmp_path, [{"kind": "synonym", "term": "纸尿裤", "variants": ["尿不湿", "尿片", "小飞象"]}])
    assert top_ids("小飞象有货吗", 1) == ["s-chima"]


def test_a_csv_row_whose_body_spans_lines_is_named_by_the_line_it_starts_on(app, runner, tmp_path):
    """Operations teams write bodies with line breaks in Excel; the CSV quotes them over several lines. An error
    names the line where the row starts, the one a spreadsheet user looks for."""
    path = tmp_path / "scripts.csv"
    path.write_text("external_id,title,body,valid_from,valid_to\n"
                    's1,转奶,"第一段\n第二段\n第三段",,\n'
                    's2,有效期反了,"正文\n续行",2026-05-01,2026-04-01\n'
                    "s3,缺正文,,,\n", encoding="utf-8")
    result = runner.invoke(args=["knowledge", "import", str(path)])
    assert result.exit_code == 1
    assert "line 5: script: valid_to 2026-04-01 is before valid_from 2026-05-01" in result.output
    assert "line 7: script: body is missing" in result.output
    assert db.session.scalar(select(func.count()).select_from(Script)) == 0


def test_a_bad_file_imports_nothing_and_names_every_bad_line(app, runner, tmp_path):
    records = [
        LIBRARY[0],
        {"kind": "script", "external_id": "x1", "title": "缺正文"},
        '{"kind": "script", "external_id": ',
        {"kind": "content", "external_id": "c9", "title": "无链接文章", "content_type": "article"},
        {"kind": "script", "external_id": "x2", "title": "有效期反了", "body": "b", "valid_from": "2026-05-01",
         "valid_to": "2026-04-01"},
        {"kind": "poster", "external_id": "x3"},
        LIBRARY[0],
    ]
    result = runner.invoke(args=["knowledge", "import", write_jsonl(tmp_path / "bad.jsonl", records)])
    assert result.exit_code == 1
    out = result.output
    assert "line 2: script: body is missing" in out
    assert "line 3: JSON syntax error" in out
    assert "line 4: content: url is missing" in out
    assert "line 5: script: valid_to 2026-04-01 is before valid_from 2026-05-01" in out
    assert "line 6: kind must be one of" in out
    assert "line 7: script: 's-zhuannai' appears again (first at line 1)" in out
    assert "6 bad record(s): nothing imported" in out
    assert db.session.scalar(select(func.count()).select_from(Script)) == 0


def test_reimport_updates_in_place(app, tmp_path):
    load(tmp_path)
    load(tmp_path)
    assert db.session.scalar(select(func.count()).select_from(Script)) == 5
    changed = [dict(LIBRARY[0], title="转奶的正确方法")]
    load(tmp_path, changed)
    assert db.session.scalar(select(Script.title).where(Script.external_id == "s-zhuannai")) == "转奶的正确方法"
    assert db.session.scalar(select(func.count()).select_from(Script)) == 5


def test_disabled_and_out_of_window_scripts_are_never_suggested(app, tmp_path):
    today = local_today()
    load(tmp_path)
    assert "s-quan" in top_ids("优惠券怎么用", 1)
    load(tmp_path, [dict(LIBRARY[4], enabled=False)])
    assert "s-quan" not in top_ids("优惠券怎么用", 5)
    load(tmp_path, [dict(LIBRARY[4], enabled=True, valid_to=(today - timedelta(days=1)).isoformat())])
    assert "s-quan" not in top_ids("优惠券怎么用", 5)
    load(tmp_path, [dict(LIBRARY[4], valid_from=(today + timedelta(days=1)).isoformat(), valid_to=None)])
    assert "s-quan" not in top_ids("优惠券怎么用", 5)
    load(tmp_path, [dict(LIBRARY[4], valid_from=today.isoformat(), valid_to=today.isoformat())])
    assert "s-quan" in top_ids("优惠券怎么用", 1)


def test_a_change_reaches_another_worker_without_a_restart(app, tmp_path):
    load(tmp_path)
    other = create_app(TEST_SETTINGS)  # a second process's app: its own in-memory index
    with other.app_context():
        assert top_ids("优惠券怎么用", 1) == ["s-quan"]
    load(tmp_path, [dict(LIBRARY[4], enabled=False)])  # changed through this app
    with other.app_context():
        assert "s-quan" not in top_ids("优惠券怎么用", 5)


def test_what_describes_the_customer_lifts_a_script_as_the_library_now_tags_it(app, tmp_path):
    twins = [{"kind": "script", "external_id": eid, "title": "奶粉冲调方法", "category": category,
              "body": "先放水后放奶粉，水温40度左右，摇匀后喂。"}
             for eid, category in (("s-early", "早产"), ("s-term", "足月"))]
    load(tmp_path, twins)
    first = service.suggest("奶粉怎么冲", context={"早产"})["scripts"][0]
    assert first["external_id"] == "s-early"
    load(tmp_path, [dict(twins[0], category="足月"), dict(twins[1], category="早产")])
    first = service.suggest("奶粉怎么冲", context={"早产"})["scripts"][0]
    assert first["external_id"] == "s-term"


def test_export_round_trips_in_every_format(app, runner, tmp_path):
    load(tmp_path, LIBRARY + [{"kind": "word", "word": "小飞象"},
                              dict(LIBRARY[0], external_id="s-old", enabled=False, valid_to="2026-12-31")])
    before = operations.library_records()
    for suffix in ("jsonl", "csv", "xlsx"):
        path = tmp_path / f"out.{suffix}"
        result = runner.invoke(args=["knowledge", "export", str(path)])
        assert result.exit_code == 0, result.output
        db.session.execute(Script.__table__.delete())
        db.session.execute(Content.__table__.delete())
        db.session.execute(Vocabulary.__table__.delete())
        db.session.commit()
        result = runner.invoke(args=["knowledge", "import", str(path)])
        assert result.exit_code == 0, (suffix, result.output)
        assert operations.library_records() == before, suffix


def test_exports_never_hand_excel_a_formula_and_still_round_trip(app, runner, tmp_path):
    risky = [dict(LIBRARY[0], external_id="s-eq", title="=HYPERLINK(\"http://x\",\"点我\")",
                  body="+86 400 800 8888 客服热线", category="-促销", tags=["@会员", "'=引号"])]
    load(tmp_path, LIBRARY + risky)
    before = operations.library_records()
    csv_path, xlsx_path = tmp_path / "out.csv", tmp_path / "out.xlsx"
    for path in (csv_path, xlsx_path):
        assert runner.invoke(args=["knowledge", "export", str(path)]).exit_code == 0
    row = next(r for r in csv.reader(io.StringIO(csv_path.read_text(encoding="utf-8-sig"))) if "s-eq" in r)
    assert not [cell for cell in row if cell[:1] in ("=", "+", "-", "@")]  # every risky cell starts with '
    assert any(c.startswith("'=HYPERLINK") for c in row)
    sheet = load_workbook(xlsx_path)["话术"]
    cells = [c for r in sheet.iter_rows() for c in r if isinstance(c.value, str) and c.value.startswith("=")]
    assert cells and all(c.data_type == "s" for c in cells)  # text, not a formula
    for path in (csv_path, xlsx_path):
        db.session.execute(Script.__table__.delete())
        db.session.execute(Content.__table__.delete())
        db.session.execute(Vocabulary.__table__.delete())
        db.session.commit()
        result = runner.invoke(args=["knowledge", "import", str(path)])
        assert result.exit_code == 0, (path.suffix, result.output)
        assert operations.library_records() == before, path.suffix


def test_an_operations_workbook_with_chinese_sheet_names_imports(app, runner, tmp_path):
    book = Workbook()
    sheet = book.active
    sheet.title = "话术"
    sheet.append(["external_id", "title", "category", "body", "tags", "enabled"])
    sheet.append(["w1", "门店营业时间", "门店", "我们每天9点到21点营业，节假日照常。", "营业时间、几点开门", "是"])
    sheet.append(["w2", "停车", "门店", "商场地下车库消费满200元免费停2小时。", "停车，车位", "否"])
    words = book.create_sheet("同义词")
    words.append(["term", "variants"])
    words.append(["营业时间", "几点开门，几点关门"])
    path = tmp_path / "library.xlsx"
    book.save(path)
    result = runner.invoke(args=["knowledge", "import", str(path)])
    assert result.exit_code == 0, result.output
    rows = {s.external_id: s for s in db.session.scalars(select(Script))}
    assert rows["w1"].tags == ["营业时间", "几点开门"] and rows["w1"].enabled
    assert rows["w2"].enabled is False
    assert top_ids("你们家晚上几点关门呀", 1) == ["w1"]


def test_a_workbook_with_a_bad_row_names_sheet_and_row(app, runner, tmp_path):
    book = Workbook()
    sheet = book.active
    sheet.title = "素材"
    sheet.append(["external_id", "title", "content_type", "url"])
    sheet.append(["c1", "好文", "article", "https://example.com/1"])
    sheet.append(["c2", "坏类型", "poster", "https://example.com/2"])
    path = tmp_path / "bad.xlsx"
    book.save(path)
    result = runner.invoke(args=["knowledge", "import", str(path)])
    assert result.exit_code == 1
    assert "sheet 素材 row 3: content: content_type must be one of" in result.output
    assert db.session.scalar(select(func.count()).select_from(Content)) == 0


def test_cli_suggest_reads_queries_from_stdin_in_order(app, runner, tmp_path):
    load(tmp_path)
    result = runner.invoke(args=["knowledge", "suggest", "--top", "2"],
                           input="宝宝便秘了\n\n优惠券能叠加吗\n")
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in result.output.strip().splitlines()]
    assert [x["query"] for x in lines] == ["宝宝便秘了", "", "优惠券能叠加吗"]
    assert lines[0]["results"][0]["external_id"] == "s-bianmi"
    assert lines[1]["error"] == "empty query"
    assert lines[2]["results"][0]["external_id"] == "s-quan"
    assert len(lines[2]["results"]) <= 2 and set(lines[2]["results"][0]) == {"external_id", "title", "score"}


def test_cli_suggest_text_and_bad_queries(app, runner, tmp_path):
    load(tmp_path)
    result = runner.invoke(args=["knowledge", "suggest", "--json", "ＦＵＬＬ全角 宝宝便秘 bianmi 🤔🤔"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["scripts"][0]["external_id"] == "s-bianmi"
    result = runner.invoke(args=["knowledge", "suggest", "   "])
    assert result.exit_code == 2 and "empty" in result.output
    long = "宝宝便秘" + "啊" * 1000
    result = runner.invoke(args=["knowledge", "suggest", "--json", long])
    assert result.exit_code == 0
    assert json.loads(result.output)["scripts"][0]["external_id"] == "s-bianmi"


def test_content_follows_the_customer_and_text(app, tmp_path):
    from tests.knowledge.factories import guide_with_customer
    from models import CustomerTag, Tag, TagGroup

    load(tmp_path)
    guide, customer = guide_with_customer()
    assert [c["external_id"] for c in service.content_for(customer)] == ["c-all"]
    group = TagGroup(name="宝宝阶段")
    db.session.add(group)
    db.session.flush()
    tag = Tag(group_id=group.id, name="0-6月")
    db.session.add(tag)
    db.session.flush()
    db.session.add(CustomerTag(customer_id=customer.id, tag_id=tag.id, source="guide"))
    db.session.commit()
    assert [c["external_id"] for c in service.content_for(customer)] == ["c-zhuannai", "c-all"]
    result = service.suggest("怎么转奶不拉肚子", customer=customer)
    assert result["content"][0]["external_id"] == "c-zhuannai"


def test_the_documented_example_file_imports(app, runner):
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "docs" / "examples" / "library-example.jsonl"
    result = runner.invoke(args=["knowledge", "import", str(example)])
    assert result.exit_code == 0, result.output
    assert db.session.scalar(select(Script.enabled).where(Script.external_id == "s003")) is False
