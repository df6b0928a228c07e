"""Why a library import was rejected, in the words head office reads: the reasons `ImportRejected` carries
(the English the `… import` commands print) and where each bad record is, in Simplified Chinese, for the
manager page's 资料导入 only.

The validators keep writing plain English (their commands print it, and tests check it); this module is the
one place that knows their message shapes. `REASONS` pairs each English template with its Chinese: `{field}`
placeholders are names of the file's columns and come out as "正文（body）", so staff can find the column;
the other placeholders are values from the file, kept as written. A reason no template matches is shown in
its English rather than not at all. tests/reports/test_import_reasons.py reads the validators' source and
checks that every message they can raise has a template here.
"""
from __future__ import annotations

import re

# The record kind a validator puts before its reason ("script: body is missing").
KINDS = {"script": "话术", "content": "素材", "synonym": "同义词", "word": "新词", "coupon": "优惠券",
         "commission": "提成比例"}

# The files' columns (and the playbooks' keys), as the page names them.
FIELDS = {
    # 话术/素材库
    "external_id": "编号", "title": "标题", "category": "分类", "body": "正文", "summary": "摘要", "tags": "标签",
    "keywords": "关键词", "valid_from": "有效期起", "valid_to": "有效期止", "enabled": "是否启用",
    "content_type": "素材类型", "url": "链接", "media_id": "媒体 ID", "cover_url": "封面链接",
    "target_tags": "目标标签", "target_stages": "目标阶段", "term": "词条", "variants": "同义说法", "word": "新词",
    "kind": "类型",
    # 优惠券模板
    "name": "名称", "amount": "减免金额", "threshold": "门槛金额", "percent": "折扣", "gift": "赠品",
    "total_stock": "总库存", "per_customer_limit": "每人限领", "valid_days": "有效天数", "categories": "适用品类",
    "description": "说明",
    # 提成比例
    "rate": "提成比例",
    # 任务玩法
    "key": "玩法 key", "segment": "人群", "segment.tags": "人群标签", "segment.baby_stages": "人群宝宝阶段",
    "segment.lifecycle": "人群生命周期", "steps": "步骤", "day": "第几天", "date": "日期", "phase": "阶段",
    "priority": "优先级", "script": "话术", "content": "素材", "coupon": "优惠券",
}
# Where a kind's column means something narrower than the common name.
KIND_FIELDS = {"commission": {"category": "品类"}, "coupon": {"kind": "券类型"}}
STEP = re.compile(r"steps\[(\d+)\](?:\.(\w+))?")

# Python's json module's reasons (after "JSON syntax error: ", before " at column N").
JSON_REASONS = {
    "Expecting value": "缺少值（或有多余的逗号）",
    "Expecting property name enclosed in double quotes": "字段名要用英文双引号括起来（或有多余的逗号）",
    "Expecting ':' delimiter": "字段名后缺少英文冒号 :",
    "Expecting ',' delimiter": "缺少英文逗号 ,",
    "Unterminated string starting at": "引号没有闭合",
    "Invalid control character at": "文字中有换行或控制字符",
    "Invalid \\escape": "无效的反斜杠转义",
    "Invalid \\uXXXX escape": "无效的 \\u 转义",
    "Extra data": "一行只能有一条记录，这条记录后面还有内容",
}

# (English template, Chinese template). Placeholders: `field…` is a column (translated, shown with its
# name), `n…` a number, `json` a reason of Python's json module, anything else a value kept as written.
# The Chinese may name columns of its own with {F[valid_to]}. First match wins, so narrow before wide.
REASONS = [
    # Reading the file
    ("JSON syntax error: {json} at column {n}", "JSON 格式错误：{json}（第 {n} 个字符处）"),
    ("JSON syntax error: '{codec}' codec can't decode byte {byte} in position {n}: {why}",
     "不是 UTF-8 编码的文本（Excel 请另存为“CSV UTF-8”）"),
    ("JSON syntax error: {detail}", "JSON 格式错误：{detail}"),
    ("{file} is neither UTF-8 nor GBK text: in Excel, save it as 「CSV UTF-8（逗号分隔）」 and import that file",
     "{file} 既不是 UTF-8 也不是 GBK 编码的文本（Excel 请另存为“CSV UTF-8（逗号分隔）”，或直接上传 .xlsx）"),
    ("YAML syntax error: {detail}", "YAML 格式错误：{detail}"),
    ("a YAML file holds a list of playbooks", "YAML 文件应是一个玩法列表"),
    ("{file}: {what} must be .jsonl or .csv", "{file}：请用 .jsonl 或 .csv 文件"),
    ("{file}: use a .jsonl, .csv or .xlsx file", "{file}：请用 .jsonl、.csv 或 .xlsx 文件"),
    ("{file}: add a kind column, or name the file after its kind "
     "(scripts.csv, content.csv, synonyms.csv, 话术.csv …)",
     "{file}：请加一列 kind，或按内容给文件命名（话术.csv、素材.csv、同义词.csv、scripts.csv …）"),
    ("{file} is not a readable Excel workbook ({why})", "{file} 不是能读取的 Excel 工作簿（{why}）"),
    ("{file} is empty", "{file} 是空文件"),
    ("contains a NUL character (\\u0000), which cannot be stored", "含有空字符（NUL，\\u0000），无法保存"),
    ("add a kind column, or name the sheet after its kind (话术, 素材, 同义词, 新词)",
     "请加一列 kind，或按内容给工作表命名（话术、素材、同义词、新词）"),
    ("no records", "文件里没有记录"),
    ("the file has no coupon records", "文件里没有优惠券模板"),
    ("the file has no rates", "文件里没有提成比例"),
    ("no playbooks", "文件里没有玩法"),
    ("a record must be a JSON object", "每条记录须是一个 JSON 对象 {{…}}"),
    ("a playbook must be an object", "每个玩法须是一个对象"),
    # Duplicates
    ("{value} appears again (first at {where})", "{value} 重复出现（第一次在{where}）"),
    ("{field} {value} is also on line {n}", "{field}{value} 重复出现（第 {n} 行也有）"),
    ("key {value} appears twice", "{F[key]}{value} 重复出现"),
    # Any column
    ("{field} is missing", "缺少{field}"),
    ("{field} must be a string, not {value}", "{field}须是文字，不能是 {value}"),
    ("{field} is longer than {n} characters: {value}…", "{field}超过 {n} 个字：{value}…"),
    ("{field}: {value} is longer than {n} characters", "{field}中的 {value} 超过 {n} 个字"),
    ("{field} is not a whole number: {value}", "{field}须是整数：{value}"),
    ("{field} is not a number: {value}", "{field}须是数字：{value}"),
    ("{field} is out of range: {value}", "{field}超出允许的范围：{value}"),
    ("{field} is not an ISO 8601 date: {value}", "{field}不是日期（应写成 2026-01-31）：{value}"),
    ("{field} is not an ISO 8601 time: {value}", "{field}不是时间（应写成 2026-01-31T10:00:00+08:00）：{value}"),
    ("{field} is not a date: {value}", "{field}不是日期（应写成 2026-01-31）：{value}"),
    ("{field} must be one of {choices}, not {value}", "{field}须是 {choices} 之一，不能是 {value}"),
    ("{field} must be among {choices}, not {value}", "{field}须是 {choices} 中的值，不能是 {value}"),
    ("{field}: {value} is not one of {choices}", "{field}中的 {value} 不是 {choices} 之一"),
    ("{field} must be a list of words, not {value}", "{field}须是词语列表，不能含 {value}"),
    ("{field} must be a list of words", "{field}须是词语列表"),
    ("{field} must be a list", "{field}须是列表"),
    ("{field} has more than {n} entries", "{field}超过 {n} 个"),
    ("{field} must be true or false (是/否), not {value}", "{field}须是“是”或“否”（true/false），不能是 {value}"),
    ("{field} must be an object", "{field}须是一个对象"),
    ("{field} must be a short text", "{field}须是不超过 64 个字的文字"),
    ("{field} is missing or longer than {n} characters", "缺少{field}，或超过 {n} 个字"),
    # 话术/素材库
    ("valid_to {end} is before valid_from {start}", "{F[valid_to]}{end} 早于{F[valid_from]}{start}"),
    ("url must start with http:// or https://, not {value}", "{F[url]}须以 http:// 或 https:// 开头，不能是 {value}"),
    ("url is missing (an article is sent as a link card)", "缺少{F[url]}（文章以链接卡片发出）"),
    ("a {kind} needs a url or a media_id", "{kind} 素材需要{F[url]}或{F[media_id]}"),
    ("variants is empty (list the words customers use for this term)", "{F[variants]}为空（请列出顾客对这个词的说法）"),
    # 优惠券模板
    ("amount must be more than 0", "{F[amount]}须大于 0"),
    ("amount {amount} must be less than threshold {threshold}", "{F[amount]}{amount} 须小于{F[threshold]}{threshold}"),
    ("amount is only for amount_off coupons (this one is {kind})",
     "只有满减券（amount_off）填{F[amount]}（这张是 {kind}）"),
    ("percent is only for percent_off coupons (this one is {kind})",
     "只有折扣券（percent_off）填{F[percent]}（这张是 {kind}）"),
    ("validity is missing: give valid_to (fixed dates) or valid_days (days after issue)",
     "缺少有效期：请填{F[valid_to]}（固定日期）或{F[valid_days]}（发券后几天内有效）"),
    ("give either valid_to (fixed dates) or valid_days (days after issue), not both",
     "{F[valid_to]}（固定日期）和{F[valid_days]}（发券后几天内有效）只能填一个"),
    ("total_stock {stock} is below the {issued} already issued", "{F[total_stock]}{stock} 少于已发出的 {issued} 张"),
    # 提成比例
    ("rate is not a number or percentage: {value}", "{F[rate]}须是小数或百分数（0.03 或 3%）：{value}"),
    ("rate must be between 0 and 1 (or 0%–100%), not {value}", "{F[rate]}须在 0 到 1 之间（或 0%–100%），不能是 {value}"),
    ("rate has more than 4 decimals (0.01 %): {value}", "{F[rate]}最多 4 位小数（即 0.01%）：{value}"),
    # 任务玩法
    ("key must be 1–40 of a-z 0-9 _ -, not {value}", "{F[key]}须是 1–40 个 a-z、0-9、_ 或 -，不能是 {value}"),
    ("segment.{name} is not known (tags, baby_stages, lifecycle)",
     "{F[segment]}里没有 {name} 这一项（只能是 tags、baby_stages、lifecycle）"),
    ("steps must be a non-empty list", "{F[steps]}须是列表，且至少有一步"),
    ("{field} needs either day (days after adding) or date", "{field}须填{F[day]}（加好友后第几天）或{F[date]}，只填一个"),
    ("{field} must be a whole number 0–365, not {value}", "{field}须是 0–365 的整数，不能是 {value}"),
    ("{field}: two steps on the same {unit} {value}", "{field}：与前面的一步在同一{unit}（{value}）"),
    ("{field} must be marketing or service, not {value}", "{field}须是 marketing（营销）或 service（服务），不能是 {value}"),
    ("{field} must be 0–100", "{field}须是 0–100 的整数"),
]
UNITS = {"day": "天", "date": "日期"}


def _pattern(template: str) -> re.Pattern:
    def group(m: re.Match) -> str:
        name = m.group(1)
        if name.startswith("field"):
            return rf"(?P<{name}>[\w.\[\]]+)"
        if name == "n":
            return rf"(?P<{name}>\d+)"
        return rf"(?P<{name}>.+?)"

    parts = re.split(r"(\{\w+\})", template)
    return re.compile("".join(group(re.match(r"\{(\w+)\}", p)) if re.fullmatch(r"\{\w+\}", p) else re.escape(p)
                              for p in parts), re.S)


COMPILED = [(_pattern(en), zh) for en, zh in REASONS]


class _Fields(dict):
    """{column: "正文（body）"} for the {F[…]} of a Chinese template."""

    def __init__(self, kind: str | None):
        super().__init__()
        self.kind = kind

    def __missing__(self, name: str) -> str:
        return field_name(name, self.kind)


def field_name(name: str, kind: str | None = None) -> str:
    """A column as the page names it: "正文（body）"; a playbook step's "第 2 步的标题（title）"; unknown: as is."""
    step = STEP.fullmatch(name)
    if step:
        n, sub = step.groups()
        return f"第 {n} 步" + (f"的{field_name(sub)}" if sub else "")
    words = KIND_FIELDS.get(kind, {}).get(name) or FIELDS.get(name)
    return f"{words}（{name}）" if words else name


def in_chinese(reason: str) -> str:
    """`reason` (as ImportRejected carries it) in Simplified Chinese; itself when no template matches."""
    kind, sep, rest = reason.partition(": ")
    if sep and kind in KINDS:
        said = _translate(rest, kind)
        return f"{KINDS[kind]}：{said}" if said is not None else reason
    said = _translate(reason, None)
    return said if said is not None else reason


def _translate(reason: str, kind: str | None) -> str | None:
    for pattern, zh in COMPILED:
        m = pattern.fullmatch(reason)
        if m is None:
            continue
        values = {}
        for name, value in m.groupdict().items():
            if name.startswith("field"):
                value = field_name(value, kind)
            elif name == "json":
                value = JSON_REASONS.get(value, value)
            elif name == "unit":
                value = UNITS.get(value, value)
            elif name == "where":
                value = place(value)
            values[name] = value
        return zh.format(F=_Fields(kind), **values)
    return None


PLACES = ((re.compile(r"line (\d+)"), "第 {0} 行"), (re.compile(r"sheet (.+) row (\d+)"), "工作表“{0}”第 {1} 行"),
          (re.compile(r"sheet (.+)"), "工作表“{0}”"), (re.compile(r"playbook (\d+)"), "第 {0} 个玩法"))


def place(where: int | str) -> str:
    """Where a bad record is, as ImportRejected says it ("line 3", 3, "sheet 话术 row 3"), in the page's words."""
    if isinstance(where, int):
        return f"第 {where} 行" if where else "文件"
    if where == "file":
        return "文件"
    for pattern, words in PLACES:
        m = pattern.fullmatch(where)
        if m:
            return words.format(*m.groups())
    return where
