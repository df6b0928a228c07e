"""资料导入 says why each record was rejected in Simplified Chinese, with its place, while the `… import`
commands keep printing the validators' English; every reason the four library imports can give has a Chinese
form, and one that has none still shows (in English)."""
from __future__ import annotations

import ast
import io
import re
from pathlib import Path

from imports.files import read_jsonl
from reports.import_reasons import JSON_REASONS, KINDS, in_chinese
from tests.knowledge.factories import LIBRARY, write_jsonl
from tests.reports.test_library_import import admin, jsonl, upload

ROOT = Path(__file__).resolve().parents[2]
# The code whose messages reach the page: the readers and validators of the four library imports (in
# imports/records.py only the field checks they use; the data import's own types never reach the page).
VALIDATORS = {
    "imports/files.py": None,
    "imports/records.py": {"text", "integer", "money", "day"},
    "knowledge/operations.py": None,
    "coupons/operations.py": None,
    "orders/commission.py": None,
    "tasks/playbooks.py": None,
}
# Their errors go to the CLI, never to an import's page.
EXPORTS = {"export_library", "export_templates", "export_rates", "export_playbooks"}
CJK = re.compile(r"[\u4e00-\u9fff]")

BAD_LIBRARY = [
    LIBRARY[0],
    {"kind": "script", "external_id": "x1", "title": "缺正文"},
    '{"kind": "script", "external_id": ',
    {"kind": "script", "external_id": "x2", "title": "有效期", "body": "b", "valid_to": "2026-13-01"},
    {"kind": "poster", "external_id": "x3"},
    LIBRARY[0],
    {"kind": "script", "external_id": "x4", "title": "长" * 101, "body": "b"},
    {"kind": "content", "external_id": "c9", "title": "无链接文章", "content_type": "article"},
    {"kind": "script", "external_id": "x5", "title": "开关", "body": "b", "enabled": "maybe"},
    {"kind": "script", "external_id": ["x6"], "title": "编号", "body": "b"},
]
CLI_LINES = [
    "line 2: script: body is missing",
    "line 3: JSON syntax error: Expecting value at column 1",
    "line 4: script: valid_to is not an ISO 8601 date: '2026-13-01'",
    "line 5: kind must be one of script|content|synonym|word, not 'poster'",
    "line 6: script: 's-zhuannai' appears again (first at line 1)",
    f"line 7: script: title is longer than 100 characters: {'长' * 40!r}…",
    "line 8: content: url is missing (an article is sent as a link card)",
    "line 9: script: enabled must be true or false (是/否), not 'maybe'",
    'line 10: script: external_id must be a string, not ["x6"]',
    "9 bad record(s): nothing imported",
]
PAGE_ROWS = [
    ("第 2 行", "话术：缺少正文（body）"),
    ("第 3 行", "JSON 格式错误：缺少值（或有多余的逗号）（第 1 个字符处）"),
    ("第 4 行", "话术：有效期止（valid_to）不是日期（应写成 2026-01-31）：&#39;2026-13-01&#39;"),
    ("第 5 行", "类型（kind）须是 script|content|synonym|word 之一，不能是 &#39;poster&#39;"),
    ("第 6 行", "话术：&#39;s-zhuannai&#39; 重复出现（第一次在第 1 行）"),
    ("第 7 行", f"话术：标题（title）超过 100 个字：&#39;{'长' * 40}&#39;…"),
    ("第 8 行", "素材：缺少链接（url）（文章以链接卡片发出）"),
    ("第 9 行", "话术：是否启用（enabled）须是“是”或“否”（true/false），不能是 &#39;maybe&#39;"),
    ("第 10 行", "话术：编号（external_id）须是文字，不能是 [&#34;x6&#34;]"),
]


def test_each_bad_record_shows_its_reason_in_chinese_and_the_cli_prints_the_same_english(app, client, runner,
                                                                                      tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", BAD_LIBRARY)
    result = runner.invoke(args=["knowledge", "import", path])
    assert result.exit_code == 1
    assert result.output.splitlines() == CLI_LINES  # the command's words, exactly as before

    admin(client)
    resp = upload(client, "knowledge", "bad.jsonl", Path(path).read_bytes())
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400 and "话术/素材库：9 处错误，没有导入任何内容" in html
    rows = re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td></tr>", html)
    assert rows == PAGE_ROWS


def test_the_other_libraries_reasons_are_in_chinese_too(app, client):
    admin(client)
    coupons = ("external_id,name,kind,amount,threshold,percent,valid_to,valid_days,total_stock\n"
               "C1,满减,amount_off,30,199,,2026-12-31,,\n"
               "C2,折扣,percent_off,,,120,,30,\n"
               "C3,赠品,gift,,,,2026-12-31,30,\n"
               "C4,满减,amount_off,abc,,,2026-12-31,,\n"
               "C1,满减,amount_off,30,199,,2026-12-31,,-1\n").encode()
    html = upload(client, "coupons", "coupons.csv", coupons).get_data(as_text=True)
    assert "<td>第 3 行</td><td>优惠券：折扣（percent）超出允许的范围：&#39;120&#39;</td>" in html
    assert ("<td>第 4 行</td><td>优惠券：缺少赠品（gift）</td>") in html
    assert "<td>第 5 行</td><td>优惠券：减免金额（amount）须是数字：&#39;abc&#39;</td>" in html
    assert "<td>第 6 行</td><td>优惠券：总库存（total_stock）超出允许的范围：&#39;-1&#39;</td>" in html

    html = upload(client, "commission", "rates.csv", "category,rate\n奶粉,3%\n纸尿裤,150%\n奶粉,2%\n".encode()
                  ).get_data(as_text=True)
    assert "<td>第 3 行</td><td>提成比例：提成比例（rate）须在 0 到 1 之间（或 0%–100%），不能是 &#39;150%&#39;</td>" in html
    assert "<td>第 4 行</td><td>提成比例：品类（category）&#39;奶粉&#39; 重复出现（第 2 行也有）</td>" in html

    playbooks = ("- key: new_mom\n  name: 新手妈妈\n  steps:\n    - {day: 400, title: 欢迎}\n"
                 "- key: Bad Key\n  name: x\n  steps: [{day: 1, title: t}]\n"
                 "- key: p3\n  name: y\n  steps: [{day: 1, title: t}, {day: 1}]\n").encode()
    html = upload(client, "playbooks", "pb.yaml", playbooks).get_data(as_text=True)
    assert "<td>第 1 个玩法</td><td>第 1 步的第几天（day）须是 0–365 的整数，不能是 400</td>" in html
    assert "<td>第 2 个玩法</td><td>玩法 key（key）须是 1–40 个 a-z、0-9、_ 或 -，不能是 &#39;Bad Key&#39;</td>" in html
    assert "<td>第 3 个玩法</td><td>第 2 步：与前面的一步在同一天（1）</td>" in html

    html = upload(client, "coupons", "coupons.xlsx", b"PK").get_data(as_text=True)
    assert "<td>文件</td><td>coupons.xlsx：请用 .jsonl 或 .csv 文件</td>" in html


def test_a_reason_without_a_chinese_form_shows_in_english():
    assert in_chinese("script: the moon is made of cheese") == "script: the moon is made of cheese"
    assert in_chinese("something no validator says") == "something no validator says"
    assert in_chinese("JSON syntax error: Something new at column 3") == "JSON 格式错误：Something new（第 3 个字符处）"


def test_every_reason_the_json_reader_gives_has_a_chinese_form(tmp_path):
    lines = [b'{', b'{"a" 1}', b'{"a": 1 "b": 2}', b'{"a": "x', b'{"a": "\x01"}', b'{"a": "\\q"}', b'{"a": "\\u12"}',
             b'{} {}', b'{"a": 1,}', b"{'a': 1}", '{"a": "转奶"}'.encode("gbk")]
    (tmp_path / "bad.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    reasons = [str(rec) for _, rec in read_jsonl(tmp_path / "bad.jsonl")]
    assert len(reasons) == len(lines)
    seen = {re.sub(r"^JSON syntax error: | at column \d+$", "", r) for r in reasons}
    assert seen - set(JSON_REASONS) == {"'utf-8' codec can't decode byte 0xc4 in position 9: invalid continuation byte"}
    for reason in reasons:
        said = in_chinese(reason)
        assert not re.search(r"[A-Za-z]{3}", re.sub("JSON|UTF|CSV|Excel", "", said)), (reason, said)


def _messages(node) -> list[str]:
    """The message a raise or an error list gets, with every {…} of an f-string as "1"; [] for one that only
    passes another's message on (f"{kind}: {exc}", str(exc))."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        return _messages(node.body) + _messages(node.orelse)
    if isinstance(node, ast.JoinedStr):
        if any(isinstance(v, ast.FormattedValue) and isinstance(v.value, ast.Name) and v.value.id == "exc"
               for v in node.values):
            return []
        return ["".join(v.value if isinstance(v, ast.Constant) else "1" for v in node.values)]
    return []


def _validator_messages() -> list[tuple[str, str]]:
    found = []
    for rel, only in VALIDATORS.items():
        tree = ast.parse((ROOT / rel).read_text(encoding="utf-8"))
        funcs = [f for f in ast.walk(tree) if isinstance(f, ast.FunctionDef)
                 and f.name not in EXPORTS and (only is None or f.name in only)]
        for func in funcs:
            for call in ast.walk(func):
                if not isinstance(call, ast.Call):
                    continue
                name = call.func.id if isinstance(call.func, ast.Name) else getattr(call.func, "attr", None)
                args = []
                if name in ("RecordError", "ValueError", "BadLine") and call.args:
                    args = [call.args[0]]
                elif name in ("ImportRejected", "append") and call.args:
                    pairs = call.args[0].elts if isinstance(call.args[0], ast.List) else [call.args[0]]
                    args = [p.elts[1] for p in pairs if isinstance(p, ast.Tuple) and len(p.elts) == 2]
                found += [(f"{rel}:{call.lineno}", m) for a in args for m in _messages(a)]
    return found


def test_every_reason_the_validators_can_give_has_a_chinese_form():
    found = _validator_messages()
    assert len(found) > 70  # the scan reads the validators (it would pass vacuously on nothing)
    untranslated = [(where, msg) for where, msg in found if not CJK.search(in_chinese(msg))
                    or in_chinese(msg) == msg]
    assert untranslated == []
    # And after the record kind the imports put before a field's reason ("script: body is missing").
    for kind, words in KINDS.items():
        assert all(in_chinese(f"{kind}: {msg}").startswith(f"{words}：") for _, msg in found
                   if msg.partition(":")[0] not in KINDS and not msg.startswith(("JSON", "YAML")))
