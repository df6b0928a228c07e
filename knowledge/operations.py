"""Import and export of the knowledge library, as operations teams keep it: JSONL, CSV or an Excel workbook.

Records (one per line or row):
- `script`:  external_id, title, category?, body, tags?, keywords?, valid_from?, valid_to?, enabled?
- `content`: external_id, title, content_type (article|image|video|miniprogram|file), url and/or media_id,
             body (or summary)?, category?, cover_url?, tags?, keywords?, target_tags?, target_stages?,
             valid_from?, valid_to?, enabled?
- `synonym`: term, variants (the colloquial words that mean `term`: 尿不湿 → 纸尿裤)
- `word`:    word (a term the tokenizer must keep whole: an own brand, a product line)

Scripts and content are upserted by external_id, vocabulary by term. A file with any bad record imports
nothing: `ImportRejected` lists every bad line with its reason. After a commit the library version is
bumped, so every process rebuilds its index on its next suggestion (knowledge.service).
"""
from __future__ import annotations

import csv
import json
import logging
import re
import time
import zipfile
from collections.abc import Iterable
from datetime import date
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import undefer

from core.db import db
from imports.files import (NUL_REASON, BadLine, ImportRejected, csv_rows, guard_cell, has_nul, parse_each,
                           read_jsonl, unguard_formula)
from imports.records import RecordError, day, text
from knowledge import semantic
from models import CONTENT_KINDS, Content, Script, Vocabulary
from customers.segments import LIFECYCLE_LABELS

log = logging.getLogger(__name__)

KINDS = ("script", "content", "synonym", "word")
MAX_BODY = 2000
MAX_TAG = 30
LIST_SPLIT = re.compile(r"[,，、|;；\n]+")
TRUE_WORDS = {"1", "true", "yes", "y", "是", "启用", "有效", "on"}
FALSE_WORDS = {"0", "false", "no", "n", "否", "停用", "禁用", "无效", "off"}

# Columns of CSV / Excel exports, per kind, in the order a person reads them.
COLUMNS = {
    "script": ["external_id", "title", "category", "body", "tags", "keywords", "valid_from", "valid_to",
               "enabled"],
    "content": ["external_id", "title", "content_type", "category", "body", "url", "media_id", "cover_url",
                "tags", "keywords", "target_tags", "target_stages", "valid_from", "valid_to", "enabled"],
    "synonym": ["term", "variants"],
    "word": ["word"],
}
# Sheet (and CSV file) names an operations team might use, per kind.
SHEET_KINDS = {
    "script": "script", "scripts": "script", "话术": "script", "话术库": "script",
    "content": "content", "contents": "content", "素材": "content", "素材库": "content",
    "synonym": "synonym", "synonyms": "synonym", "同义词": "synonym", "词库": "synonym", "vocabulary": "synonym",
    "word": "word", "words": "word", "词语": "word", "新词": "word",
}
SHEET_NAMES = {"script": "话术", "content": "素材", "synonym": "同义词", "word": "新词"}


# ---------------------------------------------------------------------------------------------- parsing


def _list(rec: dict, field: str, *, maxlen: int = MAX_TAG, limit: int = 50) -> list[str]:
    value = rec.get(field)
    if value is None or (isinstance(value, str) and not value.strip()):
        return []
    if isinstance(value, str):
        items = LIST_SPLIT.split(value)
    elif isinstance(value, list):
        items = value
    else:
        raise RecordError(f"{field} must be a list of words")
    out: list[str] = []
    for item in items:
        if not isinstance(item, (str, int)) or isinstance(item, bool):
            raise RecordError(f"{field} must be a list of words, not {json.dumps(item, ensure_ascii=False, default=str)}")
        word = str(item).strip()
        if not word:
            continue
        if len(word) > maxlen:
            raise RecordError(f"{field}: {word[:40]!r} is longer than {maxlen} characters")
        if word not in out:
            out.append(word)
    if len(out) > limit:
        raise RecordError(f"{field} has more than {limit} entries")
    return out


def _flag(rec: dict, field: str, default: bool = True) -> bool:
    value = rec.get(field)
    if value is None or (isinstance(value, str) and not value.strip()):
        return default
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise RecordError(f"{field} must be true or false (是/否), not {value!r}")


def _window(rec: dict) -> tuple[date | None, date | None]:
    start, end = day(rec, "valid_from"), day(rec, "valid_to")
    if start and end and end < start:
        raise RecordError(f"valid_to {end} is before valid_from {start}")
    return start, end


def parse_script(rec: dict) -> dict:
    start, end = _window(rec)
    return {
        "external_id": text(rec, "external_id", 64),
        "title": text(rec, "title", 100),
        "category": text(rec, "category", 40, required=False) or "",
        "body": text(rec, "body", MAX_BODY),
        "tags": _list(rec, "tags"),
        "keywords": _list(rec, "keywords"),
        "valid_from": start, "valid_to": end,
        "enabled": _flag(rec, "enabled"),
    }


def parse_content(rec: dict) -> dict:
    start, end = _window(rec)
    kind = text(rec, "content_type", 16, required=False) or "article"
    if kind not in CONTENT_KINDS:
        raise RecordError(f"content_type must be one of {'|'.join(CONTENT_KINDS)}, not {kind!r}")
    url = text(rec, "url", 1000, required=False)
    media_id = text(rec, "media_id", 200, required=False)
    if url and not re.match(r"^https?://", url):
        raise RecordError(f"url must start with http:// or https://, not {url[:40]!r}")
    if kind == "article" and not url:
        raise RecordError("url is missing (an article is sent as a link card)")
    if not url and not media_id:
        raise RecordError(f"a {kind} needs a url or a media_id")
    stages = _list(rec, "target_stages")
    bad = [s for s in stages if s not in LIFECYCLE_LABELS]
    if bad:
        raise RecordError(f"target_stages must be among {'|'.join(LIFECYCLE_LABELS)}, not {bad[0]!r}")
    summary = rec.get("body") if rec.get("body") not in (None, "") else rec.get("summary")
    return {
        "external_id": text(rec, "external_id", 64),
        "title": text(rec, "title", 100),
        "kind": kind,
        "category": text(rec, "category", 40, required=False) or "",
        "summary": text({"summary": summary}, "summary", MAX_BODY, required=False) or "",
        "url": url, "media_id": media_id,
        "cover_url": text(rec, "cover_url", 1000, required=False),
        "tags": _list(rec, "tags"),
        "keywords": _list(rec, "keywords"),
        "target_tags": _list(rec, "target_tags", maxlen=129),
        "target_stages": stages,
        "valid_from": start, "valid_to": end,
        "enabled": _flag(rec, "enabled"),
    }


def parse_synonym(rec: dict) -> dict:
    term = text(rec, "term", 40)
    variants = [v for v in _list(rec, "variants", maxlen=40, limit=200) if v != term]
    if not variants:
        raise RecordError("variants is empty (list the words customers use for this term)")
    return {"term": term, "variants": variants}


def parse_word(rec: dict) -> dict:
    return {"term": text(rec, "word", 40), "variants": []}


PARSERS = {"script": parse_script, "content": parse_content, "synonym": parse_synonym, "word": parse_word}


def parse_record(rec) -> tuple[str, dict]:
    if not isinstance(rec, dict):
        raise RecordError("a record must be a JSON object")
    kind = rec.get("kind")
    if kind is None and "type" in rec:  # the data import's spelling
        kind = rec.get("type")
    parser = PARSERS.get(kind) if isinstance(kind, str) else None
    if parser is None:
        raise RecordError(f"kind must be one of {'|'.join(KINDS)}, not {kind!r}" if kind is not None
                          else "kind is missing")
    try:
        return kind, parser(rec)
    except RecordError as exc:
        raise RecordError(f"{kind}: {exc}") from None


# ----------------------------------------------------------------------------------------------- import


def import_library(lines: Iterable[tuple[str, object]], *, dry_run: bool = False,
                   embed: str = "now") -> dict[str, int]:
    """Upsert every record of `lines` ((where, raw record) pairs), or nothing: raises ImportRejected
    (`where` is text, "line 3" or "sheet 话术 row 3", so the errors stay in file order).

    Returns {kind: records} for the kinds present. Commits (or, with dry_run, rolls back). Then the scripts
    whose text changed get their sentence vectors: `embed="now"` computes them here, `"queue"` leaves them
    to a worker job (a web request must not wait minutes), `"none"` to the caller (the command line, which
    reports its progress). Until then the library is searched by its words only."""
    errors: list[tuple[str, str]] = []
    parsed: dict[str, dict[str, tuple[str, dict]]] = {k: {} for k in KINDS}
    for where, (kind, values) in parse_each(lines, parse_record, errors, catch=RecordError):
        key = values.get("external_id") or values["term"]
        bucket = parsed["synonym" if kind == "word" else kind]
        if key in bucket:
            errors.append((where, f"{kind}: {key!r} appears again (first at {bucket[key][0]})"))
            continue
        bucket[key] = (where, values)
    if not any(parsed.values()) and not errors:
        errors.append(("file", "no records"))
    if errors:
        raise ImportRejected(errors)

    counts = {}
    try:
        for kind, model, key in (("script", Script, "external_id"), ("content", Content, "external_id"),
                                 ("synonym", Vocabulary, "term")):
            rows = parsed[kind]
            if not rows:
                continue
            existing = {getattr(r, key): r for r in db.session.scalars(
                select(model).where(getattr(model, key).in_(list(rows))))}
            for k, (_, values) in rows.items():
                row = existing.get(k)
                if row is None:
                    db.session.add(model(**values))
                else:
                    for field, value in values.items():
                        if getattr(row, field) != value:
                            setattr(row, field, value)
            counts[kind] = len(rows)
        db.session.flush()
        if dry_run:
            db.session.rollback()
        else:
            db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    if not dry_run:
        from knowledge.service import library_changed

        library_changed()
        if counts.get("script"):
            if embed == "now" and semantic.enabled():
                embed_library()
            elif embed == "queue":
                from core.queue import jobs

                jobs.enqueue(embed_job)
    return counts


EMBED_LOCK = "kb:embed:lock"  # one embedding run at a time, chain-wide
EMBED_AGAIN = "kb:embed:again"  # set by a run that found the lock taken: the holder makes another pass
EMBED_DIRTY = "kb:embed:dirty"  # vectors were saved that no index rebuild has announced yet
EMBED_LOCK_TTL = 120  # seconds; renewed after every chunk, so only a dead run's lock expires


def embed_library(encoder: semantic.Encoder | None = None, *, chunk: int = 64,
                  budget: float | None = None) -> dict[str, int]:
    """Compute the vector of every script that lacks a current one (new or changed text, an upgrade, a model
    change, a damaged blob), committing every `chunk` scripts: an interrupted run keeps what it finished.
    `encoder`: the model (None: the service's, loaded only once a script needs a vector: semantic.refresh).

    One run at a time (a Redis lock). A run that finds another going asks it for one more pass (the holder,
    having let go of the lock, takes it again and lists the scripts anew) and returns `busy`. With
    `budget` (seconds) a run stops after the chunk that exceeds it, with `remaining` > 0: the caller queues
    the rest. When a run ends with nothing remaining and vectors were saved since the last announcement (by
    it or by a run that died), every process is told to rebuild its index."""
    from core.redis_store import rstore
    from redis.exceptions import LockError

    client = rstore.client
    lock = client.lock(EMBED_LOCK, timeout=EMBED_LOCK_TTL)
    started = time.monotonic()
    total = computed = remaining = 0
    while True:
        if not lock.acquire(blocking=False):
            client.set(EMBED_AGAIN, 1)
            if not lock.acquire(blocking=False):  # the holder may have let go meanwhile: then it is ours
                # (after a pass of ours, another run took the lock between our passes: it makes the one asked for)
                return {"scripts": total, "computed": computed, "remaining": 0, "busy": 1}
        try:
            client.delete(EMBED_AGAIN)  # from here on a newcomer's request means one more pass
            ids = list(db.session.scalars(select(Script.id).order_by(Script.id)))
            total, done = len(ids), 0
            for start in range(0, len(ids), chunk):
                part = ids[start:start + chunk]
                rows = list(db.session.scalars(select(Script).options(undefer(Script.embedding))
                                               .where(Script.id.in_(part))))
                n = semantic.refresh(rows, encoder)
                db.session.commit()
                if n:
                    client.set(EMBED_DIRTY, 1)
                computed, done = computed + n, start + len(part)
                lock.reacquire()  # LockError: it expired and may be another run's now
                if n and budget is not None and time.monotonic() - started > budget:
                    break
        except LockError:
            log.warning("the embedding lock expired during a run; another run carries on")
            return {"scripts": total, "computed": computed, "remaining": 0, "busy": 1}
        finally:
            try:
                lock.release()
            except LockError:
                pass
        remaining = total - done
        if remaining or not client.exists(EMBED_AGAIN):
            break  # else a run asked for another pass meanwhile: take the lock again and list the scripts anew
    if not remaining and client.delete(EMBED_DIRTY):
        from knowledge.service import library_changed

        library_changed()  # every worker rebuilds its index with the new vectors
    return {"scripts": total, "computed": computed, "remaining": remaining, "busy": 0}


EMBED_JOB_BUDGET = 45.0  # seconds of embedding per job run, well inside the queue's 120 s job timeout
EMBED_JOB_CHUNK = 16  # scripts per commit (a chunk takes 1-3 s)


def embed_job() -> int:
    """Worker job after an import from the manager page: embed for under a minute, then queue the rest."""
    if not semantic.enabled():
        return 0
    result = embed_library(chunk=EMBED_JOB_CHUNK, budget=EMBED_JOB_BUDGET)
    if result["remaining"]:
        from core.queue import jobs

        jobs.enqueue(embed_job)
    return result["computed"]


def _cell(value):
    if value is None:
        return None
    if isinstance(value, date):
        return value.isoformat()[:10]
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return value if isinstance(value, (bool, int, str)) else str(value)


def _kind_from_name(name: str) -> str | None:
    stem = name.strip().lower().replace("-", "_")
    if stem in SHEET_KINDS:
        return SHEET_KINDS[stem]
    for word, kind in SHEET_KINDS.items():
        if stem.startswith(word) or stem.endswith(word):
            return kind
    return None


def _rows(header: list, values: Iterable[tuple], default_kind: str | None, where):
    names = [str(h).strip() if h is not None else "" for h in header]
    for n, row in values:
        rec = {k: _cell(v) for k, v in zip(names, row) if k and _cell(v) not in (None, "")}
        if not rec:
            continue
        if has_nul(rec.values()):
            yield where(n), BadLine(NUL_REASON)
            continue
        if default_kind and "kind" not in rec:
            rec["kind"] = default_kind
        yield where(n), rec


def read_library_file(path) -> Iterable[tuple[str, object]]:
    """(where, raw record) pairs from a .jsonl, .csv or .xlsx file."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        return ((f"line {n}", rec) for n, rec in read_jsonl(path))
    if suffix == ".csv":
        return _read_csv(path)
    if suffix in (".xlsx", ".xlsm"):
        return _read_xlsx(path)
    raise ImportRejected([("file", f"{path.name}: use a .jsonl, .csv or .xlsx file")])


def _read_csv(path: Path):
    header, *rows = csv_rows(path)
    if header is None:
        raise ImportRejected([("file", f"{path.name} is empty")])
    # Our CSV export puts ' before a cell Excel would read as a formula (= + - @ …): taken off here.
    rows = [(n, [unguard_formula(v) for v in row]) for n, row in rows]
    has_kind = "kind" in [h.strip() for h in header]
    default = None if has_kind else _kind_from_name(path.stem)
    if default is None and not has_kind:
        raise ImportRejected([("file", f"{path.name}: add a kind column, or name the file after its kind "
                                        "(scripts.csv, content.csv, synonyms.csv, 话术.csv …)")])
    return list(_rows(header, rows, default, lambda n: f"line {n}"))


def _read_xlsx(path: Path):
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, OSError, KeyError, ValueError) as exc:
        raise ImportRejected([("file", f"{path.name} is not a readable Excel workbook ({type(exc).__name__})")])
    out = []
    try:
        for sheet in book.worksheets:
            rows = sheet.iter_rows(values_only=True)
            header = next(rows, None)
            if not header or all(h is None for h in header):
                continue
            names = [str(h).strip() for h in header if h is not None]
            default = None if "kind" in names else _kind_from_name(sheet.title)
            if default is None and "kind" not in names:
                out.append((f"sheet {sheet.title}", RecordError(
                    "add a kind column, or name the sheet after its kind (话术, 素材, 同义词, 新词)")))
                continue
            out.extend(_rows(list(header), ((n, r) for n, r in enumerate(rows, 2)), default,
                             lambda n, t=sheet.title: f"sheet {t} row {n}"))
    finally:
        book.close()
    return [(w, BadLine(str(r)) if isinstance(r, RecordError) else r) for w, r in out]


# ----------------------------------------------------------------------------------------------- export


def library_records() -> list[dict]:
    """Every script, content item and vocabulary entry as an import record (round-trips through import)."""
    out: list[dict] = []
    for s in db.session.scalars(select(Script).order_by(Script.external_id)):
        out.append(_clean({"kind": "script", "external_id": s.external_id, "title": s.title,
                           "category": s.category, "body": s.body, "tags": s.tags, "keywords": s.keywords,
                           "valid_from": s.valid_from, "valid_to": s.valid_to, "enabled": s.enabled}))
    for c in db.session.scalars(select(Content).order_by(Content.external_id)):
        out.append(_clean({"kind": "content", "external_id": c.external_id, "title": c.title,
                           "content_type": c.kind, "category": c.category, "body": c.summary, "url": c.url,
                           "media_id": c.media_id, "cover_url": c.cover_url, "tags": c.tags,
                           "keywords": c.keywords, "target_tags": c.target_tags,
                           "target_stages": c.target_stages, "valid_from": c.valid_from,
                           "valid_to": c.valid_to, "enabled": c.enabled}))
    for v in db.session.scalars(select(Vocabulary).order_by(Vocabulary.term)):
        out.append({"kind": "synonym", "term": v.term, "variants": v.variants} if v.variants
                   else {"kind": "word", "word": v.term})
    return out


def _clean(rec: dict) -> dict:
    out = {}
    for k, v in rec.items():
        if v in (None, "", []):
            continue
        out[k] = v.isoformat() if isinstance(v, date) else v
    return out


def export_library(path) -> dict[str, int]:
    """Write the library to `path` (.jsonl, .csv or .xlsx, by its suffix). Returns {kind: records}."""
    path = Path(path)
    records = library_records()
    counts: dict[str, int] = {}
    for r in records:
        counts[r["kind"]] = counts.get(r["kind"], 0) + 1
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        with open(path, "w", encoding="utf-8") as f:
            for r in records:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    elif suffix == ".csv":
        columns = ["kind"] + [c for k in KINDS for c in COLUMNS[k] if c != "kind"]
        columns = list(dict.fromkeys(columns))
        with open(path, "w", encoding="utf-8-sig", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(columns)
            for r in records:  # a cell Excel would run as a formula (=, +, -, @ …) is written as text
                writer.writerow([guard_cell(_flat(r.get(c))) for c in columns])
    elif suffix == ".xlsx":
        from openpyxl import Workbook

        book = Workbook()
        book.remove(book.active)
        for kind in KINDS:
            sheet = book.create_sheet(SHEET_NAMES[kind])
            sheet.append(COLUMNS[kind])
            for r in records:
                if r["kind"] == kind:
                    sheet.append([_flat(r.get(c)) for c in COLUMNS[kind]])
                    for cell in sheet[sheet.max_row]:  # openpyxl stores a string starting with = as a formula
                        if isinstance(cell.value, str) and cell.value.startswith("="):
                            cell.data_type = "s"
        book.save(path)
    else:
        raise ValueError(f"{path.name}: export to a .jsonl, .csv or .xlsx file")
    return counts


def _flat(value):
    if isinstance(value, list):
        return "|".join(value)
    if isinstance(value, bool):
        return "是" if value else "否"
    return "" if value is None else value
