"""`flask --app app report …`: leaderboard, leaderboard-rebuild, and funnel (tracking/cli.py)."""
from __future__ import annotations

import json

import click
from flask.cli import AppGroup

from core.timeutil import local_today, parse_date
from reports import leaderboard as lb

report_cli = AppGroup("report", help="Reports for managers and operations: leaderboards and funnels.")

_OPTIONS = [
    click.option("--period", type=click.Choice(lb.PERIODS), default="day", show_default=True),
    click.option("--date", "day", help="A day inside the period (YYYY-MM-DD; default today)."),
    click.option("--metric", default="gmv", show_default=True, help="Sort by: " + ", ".join(lb.SORTABLE)),
    click.option("--json", "as_json", is_flag=True, help="One JSON row per line."),
    click.option("--store", "store_code", help="Only this store's guides (a store code)."),
    click.option("--stores", "by_store", is_flag=True, help="Rank stores instead of guides."),
]


def _with_options(f):
    for option in reversed(_OPTIONS):
        f = option(f)
    return f


def _date(day):
    try:
        return parse_date(day) if day else local_today()
    except ValueError:
        raise click.UsageError(f"--date is not a date: {day!r}") from None


def _print(rows, as_json, by_store):
    if as_json:
        for r in rows:
            if by_store:
                out = {k: r[k] for k in ("rank", "store", "name", "new_customers", "tasks_done", "orders", "gmv",
                                         "commission", "coupons_redeemed")}
            else:
                out = {k: r[k] for k in lb.ROW_FIELDS}
            click.echo(json.dumps(out, ensure_ascii=False))
        return
    click.echo(f"{'#':>3} {'who':<14}{'store':<8}{'new':>5}{'tasks':>7}{'done%':>7}{'msgs':>6}{'coupons':>8}"
               f"{'redeem':>7}{'orders':>7}{'gmv':>12}{'commission':>11}")
    for r in rows:
        who = r["name"] if by_store else f"{r['name']}({r['userid']})"
        rate = "-" if r["completion_rate"] is None else f"{r['completion_rate'] * 100:.0f}%"
        click.echo(f"{r['rank']:>3} {who:<14}{(r['store'] or '-'):<8}{r['new_customers']:>5}{r['tasks_done']:>7}"
                   f"{rate:>7}{r['messages_sent']:>6}{r['coupons_sent']:>8}{r['coupons_redeemed']:>7}"
                   f"{r['orders']:>7}{r['gmv']:>12}{r['commission']:>11}")


def _rows(period, D, metric, store_code, by_store):
    if by_store:
        return lb.store_rows(period, D, metric=metric)
    return lb.guide_rows(period, D, metric=metric, store_code=store_code)


@report_cli.command("leaderboard")
@_with_options
def leaderboard_cmd(period, day, metric, as_json, store_code, by_store):
    """The live ranking (Redis), sorted by METRIC (default gmv)."""
    try:
        rows = _rows(period, _date(day), metric, store_code, by_store)
    except lb.LeaderboardError as exc:
        raise click.UsageError(str(exc)) from None
    _print(rows, as_json, by_store)


@report_cli.command("leaderboard-rebuild")
@_with_options
def rebuild_cmd(period, day, metric, as_json, store_code, by_store):
    """Recompute the period from the database into Redis, then print it like `leaderboard`."""
    try:
        lb.span(period, _date(day))
        lb.rebuild(period, _date(day))
        rows = _rows(period, _date(day), metric, store_code, by_store)
    except lb.LeaderboardError as exc:
        raise click.UsageError(str(exc)) from None
    _print(rows, as_json, by_store)


from tracking.cli import funnel_command  # noqa: E402 (one `report` group for both areas)

report_cli.add_command(funnel_command)
