"""`flask --app app recommend rebuild` (products bought together) and `recommend for EXTERNAL_USERID`."""
from __future__ import annotations

import json

import click
from flask.cli import AppGroup

from core.db import db
from customers.operations import find_customer
from recommend import operations as ops

recommend_cli = AppGroup("recommend", help="Product recommendations (货找人).")


@recommend_cli.command("rebuild")
def rebuild_cmd():
    """Recompute which products customers buy together (the scheduler does this nightly)."""
    result = ops.rebuild_pairs()
    db.session.commit()
    click.echo(f"{result['pairs']} pair(s) for {result['skus']} product(s) from {result['customers']} customer(s) "
               f"in {result['seconds']} s")


@recommend_cli.command("for")
@click.argument("external_userid")
@click.option("--top", default=5, show_default=True, type=click.IntRange(1, 20))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def for_cmd(external_userid, top, as_json):
    """The next products for one customer (by WeCom external_userid), with reasons."""
    customer = find_customer("external_userid", external_userid)
    if customer is None:
        raise click.BadParameter(f"no customer with external_userid {external_userid!r}",
                                 param_hint="EXTERNAL_USERID")
    rows = ops.recommend(customer, top=top)
    for r in rows:
        if as_json:
            click.echo(json.dumps(r, ensure_ascii=False))
        else:
            click.echo(f"[{r['source_label']}] {r['sku']} {r['name']} ¥{r['price']}: {r['reason']}")
    if not rows and not as_json:
        click.echo("no recommendation for this customer")
