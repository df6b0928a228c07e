"""Reading import files, shared by every `… import FILE` command: JSONL and CSV records with their line
numbers, and the one exception that rejects a file (`ImportRejected`) naming every bad record."""
from __future__ import annotations

import codecs
import csv
import json
import re
from decimal import Decimal
from pathlib import Path


class ImportRejected(Exception):
    """The file has bad records; nothing was written. `errors` is [(where, reason)]: `where` is a line
    number (0: the file as a whole), sorted by line, or a text such as "sheet 话术 row 3", kept in file order."""

    def __init__(self, errors: list[tuple[int | str, str]]):
        self.errors = sorted(errors) if all(isinstance(where, int) for where, _ in errors) else list(errors)
        super().__init__(f"{len(self.errors)} bad record(s); nothing imported")


CSV_ENCODINGS = ("utf-8-sig", "gb18030")  # UTF-8 (with or without Excel's BOM), then what Excel on Chinese Windows saves


def csv_encoding(path: Path) -> str:
    """The encoding a CSV file is written in: UTF-8 with or without a BOM, else GB18030 (a superset of the
    GBK that Excel on Chinese Windows saves "CSV (逗号分隔)" in). The file is checked whole, in chunks, so a
    UTF-8 file with one bad byte far down is not read as GBK. Raises ImportRejected naming the file if it
    is neither."""
    for encoding in CSV_ENCODINGS:
        decoder = codecs.getincrementaldecoder(encoding)()
        try:
            with open(path, "rb") as f:
                while chunk := f.read(1 << 20):
                    decoder.decode(chunk)
            decoder.decode(b"", final=True)
            return encoding
        except UnicodeDecodeError:
            continue
    raise ImportRejected([(0, f"{Path(path).name} is neither UTF-8 nor GBK text: in Excel, save it as "
                              "「CSV UTF-8（逗号分隔）」 and import that file")])


def open_csv(path: Path):
    """`path` opened for the csv module in the encoding it is written in (see csv_encoding)."""
    return open(path, encoding=csv_encoding(path), newline="")


NUL_REASON = "contains a NUL character (\\u0000), which cannot be stored"


def has_nul(values) -> bool:
    """Whether any text value, nested ones included, holds a NUL character (a CSV cell, a JSON \\u0000 or a
    YAML "\\0" may; PostgreSQL refuses it in text)."""
    for v in values:
        if isinstance(v, str):
            if "\x00" in v:
                return True
        elif isinstance(v, dict):
            if has_nul(v.keys()) or has_nul(v.values()):
                return True
        elif isinstance(v, (list, tuple)) and has_nul(v):
            return True
    return False


class BadLine(str):
    """Stands in for a record that could not even be read (JSON syntax error); the text is the reason."""


def parse_each(lines, parse, errors: list, *, catch: type[Exception], prefix: str = ""):
    """(where, parse(record)) for every record of `lines` ((where, record) pairs) that parses. A record that
    could not be read (BadLine) or that `parse` refuses with `catch` goes to `errors` as (where, reason)
    instead, the reason after `prefix`: every import collects all its bad lines this way before writing."""
    for where, rec in lines:
        if isinstance(rec, BadLine):
            errors.append((where, str(rec)))
            continue
        try:
            value = parse(rec)
        except catch as exc:
            errors.append((where, f"{prefix}{exc}"))
            continue
        yield where, value


def read_jsonl(path: Path, default_type: str | None = None):
    """(line number, record) for each non-blank line; a line that is not JSON yields a BadLine."""
    loads = json.loads
    with open(path, "rb") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = loads(line, parse_float=Decimal)
            except ValueError as exc:
                msg = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
                col = f" at column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
                yield lineno, BadLine(f"JSON syntax error: {msg}{col}")
                continue
            if b"\\u0000" in line and has_nul([rec]):  # valid JSON, but PostgreSQL cannot store a NUL in text
                yield lineno, BadLine(NUL_REASON)
                continue
            if default_type and isinstance(rec, dict) and "type" not in rec:
                rec["type"] = default_type
            yield lineno, rec


# A CSV cell starting with one of these is a formula when the file is opened in Excel (OWASP's list: = + - @,
# and a TAB or CR, which Excel skips before reading the rest as a formula).
_FORMULA = re.compile(r"'*[=+\-@\t\r]")


def guard_formula(value: str) -> str:
    """`value` as a CSV cell Excel shows as text: one starting with = + - @ TAB or CR gets a leading ' (and one that
    already starts with ' before such a character gets one more), which `read_csv(unguard=…)` takes off."""
    return "'" + value if _FORMULA.match(value) else value


_NUMBER = re.compile(r"-?\d+(\.\d+)?%?")  # a figure written as text ("-12.50", "35.0%"): Excel reads a number


def guard_cell(value):
    """An export cell as guard_formula writes it when it is text that is not a plain figure; anything else
    (a number, None, "-12.50") as it is."""
    return guard_formula(value) if isinstance(value, str) and not _NUMBER.fullmatch(value) else value


def unguard_formula(value: str) -> str:
    return value[1:] if value.startswith("'") and _FORMULA.match(value) else value


def csv_rows(path: Path):
    """The header row (None for an empty file), then (the line it starts on, row) for each row after it, blank
    lines skipped; streamed. A quoted cell may span lines: a row is named by its first line, as a spreadsheet
    user would look for it. `header, *rows = csv_rows(path)` for the whole file."""
    with open_csv(path) as f:
        reader = csv.reader(f)
        yield next(reader, None)
        start = reader.line_num
        for row in reader:
            if row:
                yield start + 1, row
            start = reader.line_num


def read_csv(path: Path, record_type: str, *, unguard: tuple[str, ...] = ()):
    """(line number, record) per row; the header row names the fields; empty cells are absent. The `unguard`
    fields lose the ' that `guard_formula` put before a formula character. Streamed: a bulk import's file may
    hold a million rows."""
    rows = csv_rows(path)
    names = [h.strip() for h in next(rows) or ()]
    for lineno, row in rows:
        rec = {k: v for k, v in zip(names, row) if v != ""}
        for field in unguard:
            if isinstance(rec.get(field), str):
                rec[field] = unguard_formula(rec[field])
        rec["type"] = record_type
        yield lineno, BadLine(NUL_REASON) if has_nul(rec.values()) else rec


def read_records(path, record_type: str, *, what: str, unguard: tuple[str, ...] = ()) -> list[tuple[int, object]]:
    """(line number, record) from a .jsonl or a .csv file of `record_type` records (coupon templates,
    commission rates); `what` names the file in the rejection of any other kind ("a coupon file"); `unguard`:
    see read_csv."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return list(read_csv(path, record_type, unguard=unguard))
    if suffix in (".jsonl", ".json", ".ndjson"):
        return list(read_jsonl(path))
    raise ImportRejected([(0, f"{path.name}: {what} must be .jsonl or .csv")])
