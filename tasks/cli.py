"""`flask --app app tasks generate|list|done|skip`, `tasks playbooks import|export|list`, `tasks touches rebuild`."""
from __future__ import annotations

import json
import sys
from datetime import date

import click
from flask.cli import AppGroup

from core.db import db
from core.timeutil import local_today
from imports import library
from imports.cli import exit_rejected, export_or_usage
from imports.files import ImportRejected
from tasks import operations as ops
from tasks import playbooks, quota
from tasks.settings import RuleSettingsError, rule_settings

tasks_cli = AppGroup("tasks", help="Daily red-dot tasks, SOP playbooks and touch caps.")


def _date(value: str | None) -> date:
    if value is None:
        return local_today()
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)", param_hint="--date") from None


def _settings() -> dict:
    try:
        return rule_settings()
    except RuleSettingsError as exc:
        raise click.UsageError(f"rule settings: {exc}") from None


@tasks_cli.command("generate")
@click.option("--date", "day", help="The day to generate for (default: today in APP_TIMEZONE).")
@click.option("--json", "as_json", is_flag=True)
def generate_cmd(day, as_json):
    """Create the day's red dots for every guide (idempotent: a re-run adds nothing)."""
    D = _date(day)
    _settings()
    result = ops.generate(D, progress=sys.stderr.isatty() and not as_json)
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False))
        return
    click.echo(f"{D}: {result['total_created']} new task(s) in {result['seconds']} s "
               f"({result['candidates']} candidates)")
    for rule, n in sorted(result["created"].items(), key=lambda kv: -kv[1]):
        click.echo(f"  {ops.rule_label(rule)} ({rule}): {n}")


@tasks_cli.command("list")
@click.option("--date", "day")
@click.option("--guide", "userid", help="Only this guide's tasks (WeCom userid).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def list_cmd(day, userid, as_json):
    """The day's tasks, per guide in rank order; those over the daily cap are marked "more"."""
    D = _date(day)
    try:
        guide = ops.find_guide(userid) if userid else None
    except ops.TaskInputError as exc:
        raise click.BadParameter(str(exc), param_hint="--guide") from None
    rows = ops.list_tasks(D, guide=guide)
    for row in rows:
        if as_json:
            click.echo(json.dumps(row, ensure_ascii=False))
        else:
            more = " (more)" if row["more"] else ""
            click.echo(f"{row['guide']:<12} #{row['rank']:<3} [{row['rule_label']}] {row['customer_name'] or '-'}"
                       f" {row['external_userid'] or ''}: {row['reason']} · {row['status']}{more}")
    if not as_json:
        click.echo(f"{len(rows)} task(s) on {D}")


@tasks_cli.group("playbooks")
def playbooks_cli():
    """SOP playbooks: journeys whose steps become tasks on their day."""


@playbooks_cli.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
def playbooks_import(path):
    """Import playbooks from a .jsonl (one per line) or .yaml (a list) file. All or nothing."""
    try:
        n = library.import_file("playbooks", path)["playbooks"]
    except ImportRejected as exc:
        exit_rejected(exc, what="playbook")
    click.echo(f"{n} playbook(s) imported")


@playbooks_cli.command("export")
@click.argument("path", type=click.Path(dir_okay=False, writable=True))
def playbooks_export(path):
    """Write every playbook to PATH (.yaml, a list, or .jsonl, one per line); it imports back unchanged."""
    n = export_or_usage(playbooks.export_playbooks, path)
    click.echo(f"{n} playbook(s) written to {path}")


@playbooks_cli.command("list")
@click.option("--json", "as_json", is_flag=True)
def playbooks_list(as_json):
    for pb in playbooks.list_playbooks():
        if as_json:
            click.echo(json.dumps(pb, ensure_ascii=False))
            continue
        state = "" if pb["enabled"] else "（停用）"
        click.echo(f"{pb['key']}: {pb['name']}{state}")
        for step in pb["steps"]:
            when = f"第{step['day']}天" if "day" in step else step["date"]
            refs = " ".join(f"{k}={step[k]}" for k in ("script", "content", "coupon") if step.get(k))
            click.echo(f"  {when:<12} {step.get('phase', '')}{step['title']} [{step['kind']}] {refs}")


@tasks_cli.command("touches-rebuild")
def touches_rebuild():
    """Restore the touch-cap counters in Redis from the touches table."""
    click.echo(f"{quota.rebuild_counters()} counter(s) restored")
    db.session.commit()
