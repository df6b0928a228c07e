"""A store's own hit-rate self-test (`flask knowledge evaluate FILE`): customer questions with the script each
should get, asked the way `knowledge suggest` asks them, scored, and every miss explained.

A question file is .jsonl (`{"text": "...", "relevant": ["<external_id>", ...]}` per line, the format of
benchmarks/data/queries_*.jsonl), .csv or .xlsx (columns 问题 or question, and 话术编号 or relevant: several ids
separated by | ; ； , ， or 、: an id holds none of them). Like an import, a file with any bad line is rejected whole (ImportRejected naming every
bad line) and nothing is asked.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from core.db import db
from imports.files import ImportRejected, csv_rows, parse_each, read_jsonl
from knowledge import service
from knowledge.metrics import metrics, ranks
from knowledge.operations import _rows
from models import Script

TEXT_FIELDS = ("text", "question", "问题")
RELEVANT_FIELDS = ("relevant", "话术编号")
ID_SPLIT = re.compile(r"[|;；,，、]+")


@dataclass(frozen=True)
class Question:
    where: str  # "line 3" or "sheet 问题 row 3": how a rejection or a miss names it
    text: str
    relevant: tuple[str, ...]


# ---------------------------------------------------------------------------------------------- reading


def read_question_file(path) -> list[tuple[str, object]]:
    """(where, raw record) pairs from a .jsonl, .csv or .xlsx question file."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        return [(f"line {n}", rec) for n, rec in read_jsonl(path)]
    if suffix == ".csv":
        header, *rows = csv_rows(path)
        if header is None:
            raise ImportRejected([("file", f"{path.name} is empty")])
        return list(_rows(header, rows, None, lambda n: f"line {n}"))
    if suffix in (".xlsx", ".xlsm"):
        return _read_xlsx(path)
    raise ImportRejected([("file", f"{path.name}: use a .jsonl, .csv or .xlsx file")])


def _read_xlsx(path: Path) -> list[tuple[str, object]]:
    import zipfile

    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, OSError, KeyError, ValueError) as exc:
        raise ImportRejected([("file", f"{path.name} is not a readable Excel workbook ({type(exc).__name__})")])
    out: list[tuple[str, object]] = []
    try:
        for sheet in book.worksheets:  # every sheet whose header names a question column
            rows = sheet.iter_rows(values_only=True)
            header = next(rows, None)
            names = {str(h).strip() for h in header or () if h is not None}
            if not names & set(TEXT_FIELDS):
                continue
            out.extend(_rows(list(header), ((n, r) for n, r in enumerate(rows, 2)), None,
                             lambda n, t=sheet.title: f"sheet {t} row {n}"))
    finally:
        book.close()
    return out


def _field(rec: dict, names: tuple[str, ...]):
    return next((rec[n] for n in names if rec.get(n) not in (None, "")), None)


def _parse(rec) -> tuple[str, tuple[str, ...]]:
    """(question, wanted ids) of one record; ValueError names what is wrong."""
    if not isinstance(rec, dict):
        raise ValueError("a question must be a JSON object")
    text = _field(rec, TEXT_FIELDS)
    if not isinstance(text, str) or not text.strip():
        raise ValueError("the question is empty (text / 问题)" if text is None or isinstance(text, str)
                         else "the question (text / 问题) must be text")
    relevant = _field(rec, RELEVANT_FIELDS)
    if isinstance(relevant, (str, int)) and not isinstance(relevant, bool):
        relevant = ID_SPLIT.split(str(relevant))
    if not isinstance(relevant, list) or not all(isinstance(r, (str, int)) and not isinstance(r, bool)
                                                 for r in relevant):
        raise ValueError("relevant / 话术编号 must list the ids of the scripts the question should get"
                         if relevant is not None else "relevant / 话术编号 is missing")
    ids = tuple(dict.fromkeys(str(r).strip() for r in relevant if str(r).strip()))
    if not ids:
        raise ValueError("relevant / 话术编号 is empty")
    return text.strip(), ids


def parse_questions(lines: list[tuple[str, object]]) -> list[Question]:
    """Every question of the file, or ImportRejected naming every bad line: not an object, no question, no
    wanted script, a wanted script the library does not have."""
    errors: list[tuple[str, str]] = []
    parsed: list[Question] = []
    for where, (text, ids) in parse_each(lines, _parse, errors, catch=ValueError):
        parsed.append(Question(where, text, ids))
    wanted = {eid for q in parsed for eid in q.relevant}
    known = set(db.session.scalars(select(Script.external_id).where(Script.external_id.in_(wanted)))) \
        if wanted else set()
    for q in parsed:
        missing = [eid for eid in q.relevant if eid not in known]
        if missing:
            errors.append((q.where, f"no script {', '.join(map(repr, missing))} in the library"))
    if not parsed and not errors:
        errors.append(("file", "no questions"))
    if errors:
        order = {where: i for i, (where, _) in enumerate(lines)}
        raise ImportRejected(sorted(errors, key=lambda e: order.get(e[0], -1)))
    return parsed


# ---------------------------------------------------------------------------------------------- scoring


def evaluate(questions: list[Question], *, top: int = 3) -> dict:
    """Ask every question as `knowledge suggest` does (this library and its vocabulary; nothing learned, no
    customer) and score the first `top` scripts: hit@1, hit@3, MRR, and each question whose wanted script
    did not come first, with what came first, the wanted one's rank (None: not in the first `top`) and the
    question's words no script holds."""
    answers = service.suggest_many([q.text for q in questions], top=top)
    ranked = [[r["external_id"] for r in a["results"]] for a in answers]
    first = ranks(ranked, [q.relevant for q in questions])
    scores = {k: round(v, 4) for k, v in metrics(first).items()}
    scripts = {eid: (title, enabled) for eid, title, enabled in db.session.execute(
        select(Script.external_id, Script.title, Script.enabled).where(
            Script.external_id.in_({eid for q in questions for eid in q.relevant} | {r[0] for r in ranked if r})))}
    index = service.library(check=False).scripts
    misses = []
    for q, r, got in zip(questions, first, ranked):
        if r == 0:
            continue
        misses.append({
            "where": q.where, "question": q.text,
            # a disabled script is never suggested: the miss says so rather than leave it a puzzle
            "wanted": [{"external_id": eid, "title": scripts[eid][0], "enabled": scripts[eid][1]}
                       for eid in q.relevant],
            "first": {"external_id": got[0], "title": scripts[got[0]][0]} if got else None,
            "rank": None if r is None else r + 1,
            "unknown_words": index.unknown_words(q.text),
        })
    return {"questions": len(questions), "top": top, **scores, "misses": misses}


def evaluate_file(path, *, top: int = 3) -> dict:
    """`evaluate` the questions of a file; ImportRejected (nothing asked) when any line is bad."""
    return evaluate(parse_questions(read_question_file(path)), top=top)
