"""`flask knowledge evaluate FILE`: a store's own questions, scored as `knowledge suggest` answers them."""
from __future__ import annotations

import json

from openpyxl import Workbook

from knowledge.metrics import metrics, ranks
from tests.knowledge.factories import LIBRARY, write_jsonl

# Two questions the library answers, one it does not: 小飞象 is the store's name for its diapers,
# and no script says it.
QUESTIONS = [
    {"text": "宝宝三天没拉粑粑了", "relevant": ["s-bianmi"]},
    {"text": "尿不湿勒出红印子了要换多大的", "relevant": ["s-chima"]},
    {"text": "小飞象还有货吗", "relevant": ["s-chima"]},
]


def import_library(runner, tmp_path, records, name="kb.jsonl"):
    result = runner.invoke(args=["knowledge", "import", write_jsonl(tmp_path / name, records)])
    assert result.exit_code == 0, result.output


def evaluate(runner, path, *args):
    return runner.invoke(args=["knowledge", "evaluate", str(path), *args])


def test_the_report_shows_the_miss_and_its_unknown_words_and_a_keyword_import_fixes_it(app, runner, tmp_path):
    import_library(runner, tmp_path, LIBRARY)
    questions = write_jsonl(tmp_path / "q.jsonl", QUESTIONS)

    result = evaluate(runner, questions)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "3 个问题" in out
    assert "hit@1 0.667" in out
    assert "未排第一的问题 1 个" in out
    miss = out[out.index("line 3: 小飞象还有货吗"):]
    assert "想要: [s-chima] 纸尿裤尺码怎么选" in miss
    assert "第一: [s-tuihuan] 退换货政策" in miss
    assert "排名: 未命中前3" in miss
    assert "话术库没有的词: 小飞象" in miss
    assert "宝宝三天没拉粑粑了" not in out  # a hit is not listed

    # The fix an operations team has: the word as a keyword of the wanted script, through the normal import.
    import_library(runner, tmp_path, [dict(LIBRARY[2], keywords=["小飞象"])], name="fix.jsonl")
    result = evaluate(runner, questions)
    assert result.exit_code == 0, result.output
    assert "hit@1 1.000" in result.output
    assert "全部命中" in result.output
    assert "小飞象还有货吗" not in result.output


def test_json_is_one_object_with_the_scores_and_each_miss(app, runner, tmp_path):
    import_library(runner, tmp_path, LIBRARY)
    result = evaluate(runner, write_jsonl(tmp_path / "q.jsonl", QUESTIONS), "--json", "--top", "5")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert set(report) == {"questions", "top", "hit@1", "hit@3", "mrr", "misses"}
    assert (report["questions"], report["top"], report["hit@1"]) == (3, 5, 0.6667)
    [miss] = report["misses"]
    assert miss["where"] == "line 3" and miss["question"] == "小飞象还有货吗"
    assert miss["wanted"] == [{"external_id": "s-chima", "title": "纸尿裤尺码怎么选", "enabled": True}]
    assert miss["first"] == {"external_id": "s-tuihuan", "title": "退换货政策"}
    assert miss["rank"] is None
    assert "小飞象" in miss["unknown_words"]
    # the words the library does have are not offered as missing
    assert "有货" not in miss["unknown_words"] and "还有" not in miss["unknown_words"]


def test_a_csv_and_a_workbook_with_chinese_columns_and_several_ids(app, runner, tmp_path):
    import_library(runner, tmp_path, LIBRARY)
    csv_path = tmp_path / "questions.csv"
    csv_path.write_text("问题,话术编号\n宝宝三天没拉粑粑了,s-bianmi\n优惠券能和满减一起用吗,s-tuihuan|s-quan\n"
                        "开封的奶粉能退吗,s-tuihuan；s-quan\n", encoding="utf-8-sig")
    report = json.loads(evaluate(runner, csv_path, "--json").output)
    assert (report["questions"], report["hit@1"], report["misses"]) == (3, 1.0, [])

    book = Workbook()
    sheet = book.active
    sheet.title = "问题"
    sheet.append(["question", "relevant"])
    sheet.append(["宝宝三天没拉粑粑了", "s-bianmi"])
    sheet.append(["小飞象还有货吗", "s-chima"])
    book.save(tmp_path / "questions.xlsx")
    report = json.loads(evaluate(runner, tmp_path / "questions.xlsx", "--json").output)
    assert report["questions"] == 2 and report["hit@1"] == 0.5
    assert [m["where"] for m in report["misses"]] == ["sheet 问题 row 3"]


def test_a_bad_file_is_rejected_naming_each_line_and_nothing_is_evaluated(app, runner, tmp_path):
    import_library(runner, tmp_path, LIBRARY)
    path = write_jsonl(tmp_path / "bad.jsonl", [
        QUESTIONS[0],
        {"text": "  ", "relevant": ["s-bianmi"]},
        {"text": "积分怎么用", "relevant": ["s-jifen"]},
        '{"text": "半截',
        {"text": "退货要小票吗"},
        ["not", "an", "object"],
    ])
    result = evaluate(runner, path)
    assert result.exit_code == 1
    out = result.output
    assert "line 2: the question is empty" in out
    assert "line 3: no script 's-jifen' in the library" in out
    assert "line 4: JSON syntax error" in out
    assert "line 5: relevant / 话术编号 is missing" in out
    assert "line 6: a question must be a JSON object" in out
    assert "5 bad line(s): nothing evaluated" in out
    assert "hit@1" not in out

    csv_path = tmp_path / "q.csv"
    csv_path.write_text("问题,话术编号\n宝宝三天没拉粑粑了,s-bianmi\n退货要小票吗,\n", encoding="utf-8")
    result = evaluate(runner, csv_path)
    assert result.exit_code == 1 and "line 3: relevant / 话术编号 is missing" in result.output


def test_a_disabled_wanted_script_is_named_as_such(app, runner, tmp_path):
    import_library(runner, tmp_path, [*LIBRARY[:3], dict(LIBRARY[3], enabled=False)])
    result = evaluate(runner, write_jsonl(tmp_path / "q.jsonl", [{"text": "奶粉拆封了还能退吗",
                                                                  "relevant": ["s-tuihuan"]}]))
    assert result.exit_code == 0, result.output
    assert "想要: [s-tuihuan] 退换货政策（已停用）" in result.output


def test_metrics_count_a_script_missing_from_the_list_as_zero():
    first = ranks([["a", "b"], ["b", "a"], ["c"], []], [["a"], ["a"], ["a"], ["a"]])
    assert first == [0, 1, None, None]
    assert metrics(first) == {"hit@1": 0.25, "hit@3": 0.5, "mrr": 0.375}


def test_csv_files_saved_by_excel_on_chinese_windows_gbk_are_read_and_others_are_named(app, runner, tmp_path):
    # Excel on Chinese Windows saves "CSV (逗号分隔)" in GBK: the library and the questions are read as such.
    library = tmp_path / "scripts.csv"
    library.write_text("external_id,title,body,category\n"
                       "s-bianmi,宝宝便秘怎么办,宝宝便秘可以先多喝水，揉揉肚子。,育儿\n", encoding="gb18030")
    result = runner.invoke(args=["knowledge", "import", str(library)])
    assert result.exit_code == 0, result.output
    questions = tmp_path / "questions.csv"
    questions.write_text("问题,话术编号\n宝宝便秘了怎么办,s-bianmi\n", encoding="gb18030")
    result = evaluate(runner, questions, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["hit@1"] == 1.0

    # Neither UTF-8 nor GBK (Excel's "Unicode text" is UTF-16): a clear rejection naming the file.
    utf16 = tmp_path / "问题表.csv"
    utf16.write_text("问题,话术编号\n宝宝便秘了怎么办,s-bianmi\n", encoding="utf-16")
    for args in (["knowledge", "evaluate", str(utf16)], ["knowledge", "import", str(utf16)]):
        result = runner.invoke(args=args)
        assert result.exit_code == 1
        assert "问题表.csv is neither UTF-8 nor GBK text" in result.output
        assert "Traceback" not in result.output and not isinstance(result.exception, UnicodeDecodeError)


def test_the_report_names_its_cut_and_path_and_ids_may_be_separated_by_commas(app, runner, tmp_path):
    import_library(runner, tmp_path, LIBRARY)
    csv_path = tmp_path / "questions.csv"
    csv_path.write_text('问题,话术编号\n优惠券能和满减一起用吗,"s-tuihuan,s-quan"\n开封的奶粉能退吗,s-tuihuan、s-quan\n'
                        '"小飞象\n还有货吗",s-chima，s-bianmi\n', encoding="utf-8")
    result = evaluate(runner, csv_path, "--top", "10")
    assert result.exit_code == 0, result.output
    assert "MRR@10 " in result.output
    assert "不计导购发送学到的词、转化率加权" in result.output
    report = json.loads(evaluate(runner, csv_path, "--json").output)
    assert report["questions"] == 3
    assert [m["where"] for m in report["misses"]] == ["line 4"]  # where the quoted question starts
