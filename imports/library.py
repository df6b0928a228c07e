"""The libraries head office keeps, importable from a file: 话术/素材库 (`knowledge import`), 优惠券模板
(`coupons import`), 提成比例 (`commission import`) and 任务玩法 (`tasks playbooks import`).

For each: the files its command accepts, whether it has `--dry-run`, and `import_file`: the reader, the
validating import and the commit, which the command and the manager page's 资料导入 both call, so neither can
accept or write anything the other would not. `export_file` does the same for their exports (`knowledge
export`, `coupons export`, `commission export`, `tasks playbooks export`), each in the format its import reads.
"""
from __future__ import annotations

from dataclasses import dataclass

from core.db import db


@dataclass(frozen=True)
class Library:
    key: str
    label: str
    command: str
    suffixes: tuple[str, ...]  # the files its command reads
    dry_run: bool  # the command has --dry-run
    exports: tuple[str, ...]  # the formats of its export; () when it has none
    counts: dict[str, str]  # what `import_file` counts, in the page's words


LIBRARIES = {
    "knowledge": Library("knowledge", "话术/素材库", "knowledge import", (".jsonl", ".csv", ".xlsx"), True,
                         ("xlsx", "jsonl", "csv"), {"script": "话术", "content": "素材", "synonym": "同义词/新词"}),
    "coupons": Library("coupons", "优惠券模板", "coupons import", (".jsonl", ".csv"), True, ("csv", "jsonl"),
                       {"created": "新建", "updated": "更新", "unchanged": "未变"}),
    "commission": Library("commission", "提成比例", "commission import", (".jsonl", ".csv"), False, ("csv", "jsonl"),
                          {"created": "新建", "updated": "更新", "unchanged": "未变"}),
    "playbooks": Library("playbooks", "任务玩法", "tasks playbooks import", (".jsonl", ".yaml", ".yml"), False,
                         ("yaml", "jsonl"), {"playbooks": "玩法"}),
}


def import_file(key: str, path, *, dry_run: bool = False, guide_id: int | None = None,
                embed: str = "now") -> dict[str, int]:
    """Import `path` into library `key` as its command does: all or nothing, committed (or, with dry_run,
    rolled back). Returns the counts the command prints; raises ImportRejected (nothing written).
    `guide_id` is who imported, for the imports that keep an audit trail (coupon templates). `embed`: when
    the imported scripts get their sentence vectors (knowledge.operations.import_library)."""
    if dry_run and not LIBRARIES[key].dry_run:
        raise ValueError(f"{LIBRARIES[key].command} has no dry run")
    if key == "knowledge":
        from knowledge import operations

        # Commits and bumps the library version, so every process rebuilds its index.
        return operations.import_library(operations.read_library_file(path), dry_run=dry_run,
                                         embed=embed)
    if key == "coupons":
        from coupons import operations as coupons
        from imports.files import read_records

        counts = coupons.import_templates(read_records(path, "coupon", what="a coupon file",
                                                       unguard=coupons.GUARDED), dry_run=dry_run,
                                          guide_id=guide_id)
        if not dry_run:
            db.session.commit()
        return counts
    if key == "commission":
        from imports.files import read_records
        from orders import commission

        counts = commission.import_rates(read_records(path, "commission", what="a rates file",
                                                      unguard=commission.GUARDED))
        db.session.commit()
        return counts
    if key == "playbooks":
        from tasks import playbooks

        return {"playbooks": playbooks.import_playbooks(playbooks.read_playbooks(path))}  # commits
    raise KeyError(key)


def export_file(key: str, path) -> None:
    """Write library `key` to `path` (its format by the suffix), as its `… export` command does."""
    if key == "knowledge":
        from knowledge import operations

        operations.export_library(path)
    elif key == "coupons":
        from coupons import operations as coupons

        coupons.export_templates(path)
    elif key == "commission":
        from orders import commission

        commission.export_rates(path)
    elif key == "playbooks":
        from tasks import playbooks

        playbooks.export_playbooks(path)
    else:
        raise KeyError(key)
