"""`flask --app app report funnel [--by content|guide|store|script] [--since D] [--until D] [--store CODE]
[--json]`
(registered in reports/cli.py's `report` group)."""
from __future__ import annotations

import json
from datetime import date, datetime

import click

from core.timeutil import start_of
from tracking import funnels


def day_start(value: str | None, param: str) -> datetime | None:
    """The UTC instant of local midnight starting day `value` (YYYY-MM-DD)."""
    if value is None:
        return None
    try:
        D = date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)", param_hint=param) from None
    return start_of(D)


def store_option(code: str | None) -> int | None:
    try:
        return funnels.store_id_for(code)
    except LookupError:
        raise click.BadParameter(f"no store with code {code!r}", param_hint="--store") from None


@click.command("funnel")
@click.option("--by", type=click.Choice(funnels.GROUPINGS), default="content", show_default=True)
@click.option("--since", help="Links sent from this local day on (YYYY-MM-DD).")
@click.option("--until", help="Links sent before this local day (YYYY-MM-DD).")
@click.option("--store", help="Only links sent by this store's guides (store code).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def funnel_command(by, since, until, store, as_json):
    """Tracked links: sent → opened → converted (an order within 7 days of an open), per content item,
    guide or script."""
    rows = funnels.funnel(by, since=day_start(since, "--since"), until=day_start(until, "--until"),
                          store_id=store_option(store))
    if as_json:
        for row in rows:
            click.echo(json.dumps({"by": by, **row}, ensure_ascii=False))
        return
    if not rows:
        click.echo("no tracked links in the period")
        return
    click.echo(f"{'key':<20} {'sent':>6} {'opened':>7} {'opens':>6} {'conv.':>6} {'open%':>6} {'conv%':>6} "
               f"{'gmv':>10}  label")
    for r in rows:
        click.echo(f"{str(r['key'] or '-'):<20} {r['sent']:>6} {r['opened']:>7} {r['opens']:>6} "
                   f"{r['converted']:>6} {r['open_rate'] * 100:>5.1f}% {r['conversion_rate'] * 100:>5.1f}% "
                   f"{r['gmv']:>10}  {r['label']}")

