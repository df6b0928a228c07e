"""`flask --app app guides offboard USERID --to USERID2`, `guides transfers USERID`, `guides poll-transfers`."""
from __future__ import annotations

import json
import sys

import click
from flask.cli import AppGroup

from bot.wecom_client import WeComError
from core.db import db
from guides import operations as ops

guides_cli = AppGroup("guides", help="Staff: a departing guide's customers handed to a colleague (离职继承).")


@guides_cli.command("offboard")
@click.argument("userid")
@click.option("--to", "to_userid", required=True, help="The receiving guide's WeCom userid.")
@click.option("--json", "as_json", is_flag=True)
def offboard_cmd(userid, to_userid, as_json):
    """Transfer USERID's customers to --to through WeCom (100 per call), move their binding and open tasks,
    and mark USERID left. Safe to re-run: only what is still with USERID is retried."""
    try:
        result = ops.offboard(userid, to_userid)
    except ops.OffboardError as exc:
        raise click.UsageError(str(exc)) from None
    db.session.commit()
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False))
        return
    click.echo(f"{userid} → {to_userid}: {result['accepted']} of {result['customers']} customer(s) accepted by WeCom "
               f"in {result['calls']} call(s); {result['tasks_moved']} open task(s) moved; {userid} marked left")
    for f in result["failed"]:
        click.echo(f"  failed {f['external_userid']}: {f['errcode']} {f['reason']}", err=True)
    if result["failed"]:
        sys.exit(1)


@guides_cli.command("transfers")
@click.argument("userid")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def transfers_cmd(userid, as_json):
    """The transfers of USERID's customers and how each went."""
    try:
        rows = ops.transfers_of(userid)
    except ops.OffboardError as exc:
        raise click.UsageError(str(exc)) from None
    for r in rows:
        if as_json:
            click.echo(json.dumps(r, ensure_ascii=False))
        else:
            click.echo(f"{r['external_userid']:<24} {r['customer_name'] or '-':<8} → {r['to']:<12} {r['status_label']}")
    if not as_json:
        click.echo(f"{len(rows)} transfer(s)")


@guides_cli.command("poll-transfers")
def poll_cmd():
    """Ask WeCom how waiting transfers went (the scheduler does this hourly)."""
    try:
        result = ops.poll_transfers()
    except WeComError as exc:
        raise click.ClickException(exc.user_message) from None
    db.session.commit()
    click.echo(json.dumps(result, ensure_ascii=False))
