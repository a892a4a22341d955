"""`satchel serve REF [REF ...]`: a click command, registered by satchel/cli.py."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("serve")
@click.argument("refs", nargs=-1, required=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, help="REST port.")
@click.option("--workers", default="1:4", show_default=True, help="Workers per function: N or MIN:MAX.")
@click.option("--max-pending", type=int, default=None, help="Calls allowed to wait for a worker (then 429).")
@click.option(
    "--token-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="File holding the bearer token every route but /healthz then requires.",
)
@click.option("--debug", is_flag=True, help="Tracebacks in error responses.")
def serve_command(refs, host, port, workers, max_pending, token_file, debug) -> None:
    """Host functions as REST endpoints: POST /v1/functions/NAME:invoke, /docs, /metrics."""
    from .server import parse_workers, serve

    try:
        parse_workers(workers)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--workers") from None
    token = None
    if token_file is not None:
        token = token_file.read_text().strip()
        if not token:
            raise click.BadParameter(f"{token_file} is empty", param_hint="--token-file")
    serve(
        list(refs), host=host, port=port, workers=workers, max_pending=max_pending, token=token, debug=debug
    )
