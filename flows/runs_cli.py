"""`satchel runs ls` and `satchel runs gc`: flow runs in a store, for people."""

from __future__ import annotations

import datetime as _dt
from typing import Any

import click

STORE_HELP = "Store URL or directory (default: $SATCHEL_STORE)."


def _when(value: Any) -> str:
    if not value:
        return ""
    return _dt.datetime.fromtimestamp(float(value)).strftime("%Y-%m-%d %H:%M:%S")


@click.group(name="runs")
def runs_group() -> None:
    """Flow runs: list them, delete old ones and the artifacts only they used."""


@runs_group.command(name="ls")
@click.option("--flow", "flow", help="Only this flow's runs.")
@click.option("--user", help="Only this user's runs (default: every user's).")
@click.option("--store", "-s", help=STORE_HELP)
def runs_ls(flow: str | None, user: str | None, store: str | None) -> None:
    """List runs, newest first: flow, run id, status, user, tags, start and finish times."""
    from rich.console import Console
    from rich.table import Table

    from satchel.flows.client import Flow
    from satchel.flows.datastore import flow_names
    from satchel.packager.stores import open_store

    target = open_store(store)
    names = [flow] if flow else flow_names(target)
    runs = [run for name in names for run in Flow(name, target, namespace=None).runs(user=user)]
    if not runs:
        click.echo(f"no runs{f' of {flow}' if flow else ''} in {target.url}")
        return
    table = Table(title=target.url, show_edge=False)
    for col in ("flow", "run", "status", "user", "tags", "started", "finished"):
        table.add_column(col)
    for run in sorted(runs, key=lambda r: (len(r.id), r.id), reverse=True):
        table.add_row(
            run.flow_name,
            run.id,
            run.status,
            run.user or "",
            ", ".join(sorted(run.tags)),
            _when(run.record.get("started")),
            _when(run.record.get("finished")),
        )
    Console(highlight=False, width=200).print(table)


@runs_group.command(name="gc")
@click.option("--keep", type=click.IntRange(min=0), help="Keep each flow's N newest finished runs.")
@click.option("--older-than", help="Delete only runs finished longer ago than this: 7d, 12h, 30m, 45s.")
@click.option("--flow", "flow", help="Only this flow's runs (artifacts are checked against every flow).")
@click.option("--store", "-s", help=STORE_HELP)
@click.option("--grace", default="5m", show_default=True, help="Leave blobs touched this recently.")
@click.option("--dry-run", is_flag=True, help="Say what would be deleted; delete nothing.")
def runs_gc(
    keep: int | None, older_than: str | None, flow: str | None, store: str | None, grace: str, dry_run: bool
) -> None:
    """Delete old finished runs (never running ones, never a flow's latest successful run), then the
    artifact blobs no remaining run or bundle uses."""
    from satchel.flows.gc import gc

    if keep is None and older_than is None:
        raise click.UsageError("give --keep N, --older-than AGE, or both")
    summary = gc(store=store, keep=keep, older_than=older_than, flow=flow, dry_run=dry_run, grace=grace)
    for pathspec in summary.runs_deleted:
        click.echo(f"{'would delete' if dry_run else 'deleted'} run {pathspec}")
    click.echo(summary.line())
