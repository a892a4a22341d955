"""`satchel deploy` and `satchel deployments ls|promote|rollback|history`: click commands registered by satchel/cli.py."""

from __future__ import annotations

import click

STORE_HELP = "Store holding the deployment registry (default: the bundle's store, else $SATCHEL_STORE)."


@click.command("deploy")
@click.argument("ref")
@click.option("--name", "-n", help="Deployment name (default: the bundle's name).")
@click.option(
    "--audit",
    "audits",
    multiple=True,
    metavar="MODULE:FUNCTION",
    help="An audit (repeatable): the server imports it (from its working directory or installed "
    "packages) and calls it with the candidate; it returns True/False or (passed, reason), or raises.",
)
@click.option("--wait", type=float, default=None, metavar="SECONDS", help="Wait for the outcome this long.")
@click.option("--store", "-s", help=STORE_HELP)
def deploy_command(ref: str, name: str | None, audits: tuple[str, ...], wait: float | None, store) -> None:
    """Make REF the candidate of a deployment; a server watching it audits and promotes it.

    With --wait, exit 1 if an audit failed (printing its reasons), or if no server decided in time.
    """
    from .api import DeploymentFailed, deploy

    try:
        outcome = deploy(ref, name, audits=list(audits), wait=wait, store=store)
    except DeploymentFailed as exc:
        click.secho(f"not promoted: {exc}", fg="red", err=True)
        raise SystemExit(1) from None
    if outcome.promoted is None:
        click.echo(f"{outcome} (a server watching {outcome.name!r} audits it)")
    else:
        click.echo(str(outcome))


@click.group("deployments")
def deployments_group() -> None:
    """The deployment registry: stable, candidate and previous version of each name."""


@deployments_group.command("ls")
@click.option("--store", "-s", help="Store URL or directory (default: $SATCHEL_STORE).")
def ls_command(store: str | None) -> None:
    """List deployments."""
    from rich.console import Console
    from rich.table import Table

    from .api import deployments
    from .registry import Registry, short_ref

    registry = Registry(store)
    states = deployments(store)
    if not states:
        click.echo(f"no deployments in {registry.store.url}")
        return
    table = Table(show_edge=False)
    for column in ("name", "stable", "candidate", "previous", "last event"):
        table.add_column(column)
    for state in states:
        candidate = state.candidate
        last = state.last_event
        table.add_row(
            state.name,
            short_ref(state.stable),
            f"{short_ref(candidate.ref)} (#{candidate.seq}): {registry.describe_pending(state.name, candidate)}"
            if candidate
            else "",
            short_ref(state.previous),
            last.describe(limit=100) if last else "",
        )
    Console(highlight=False, width=220).print(table)


@deployments_group.command("promote")
@click.argument("name")
@click.option("--version", "version", metavar="REF", help="Promote this bundle instead of the candidate.")
@click.option("--store", "-s", help="Store URL or directory (default: $SATCHEL_STORE).")
def promote_command(name: str, version: str | None, store: str | None) -> None:
    """Make the candidate (or --version REF) stable now, without audits."""
    from .api import promote

    event = promote(name, version, store=store)
    click.echo(f"{name}: {event.describe()}")


@deployments_group.command("rollback")
@click.argument("name")
@click.option("--store", "-s", help="Store URL or directory (default: $SATCHEL_STORE).")
def rollback_command(name: str, store: str | None) -> None:
    """Make the previous version stable again; watching servers switch to it."""
    from .api import rollback

    event = rollback(name, store=store)
    click.echo(f"{name}: {event.describe()}")


@deployments_group.command("history")
@click.argument("name")
@click.option("--store", "-s", help="Store URL or directory (default: $SATCHEL_STORE).")
def history_command(name: str, store: str | None) -> None:
    """Every event of a deployment, oldest first; then each undecided deployment: who audits it since when."""
    from .registry import Registry, short_ref

    registry = Registry(store)
    events = registry.events(name)
    if not events:
        click.echo(f"no deployment named {name!r} in {registry.store.url}")
    for event in events:
        click.echo(f"#{event.seq:<4} {event.describe()}")
    for candidate in registry.state(name).pending():
        status = registry.describe_pending(name, candidate)
        click.echo(f"#{candidate.seq:<4} candidate {short_ref(candidate.ref)}: {status}")
