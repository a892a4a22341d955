"""`satchel serve REF [REF ...]`: a click command, registered by satchel/cli.py."""

from __future__ import annotations

from pathlib import Path

import click

from .backends import backend_names
from .options import (
    DEFAULT_DRAIN_TIMEOUT,
    DEFAULT_HOST,
    DEFAULT_JOB_TTL,
    DEFAULT_LEASE,
    DEFAULT_MAX_BODY,
    DEFAULT_POLL_INTERVAL,
    DEFAULT_PORT,
    DEFAULT_SCALE_DOWN_AFTER,
    DEFAULT_WORKERS,
    FIELDS,
    LOCAL_BACKEND,
    OptionError,
    ServeOptions,
    human_size,
)


@click.command("serve")
@click.argument("refs", nargs=-1)
@click.option("--host", default=DEFAULT_HOST, show_default=True, help="Address to listen on.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=int, help="REST port.")
@click.option(
    "--grpc-port",
    type=click.IntRange(min=0),
    default=None,
    help="Also serve gRPC (satchel.v1.Functions, health, reflection) on this port; 0 picks a free one.",
)
@click.option(
    "--workers",
    default=f"{DEFAULT_WORKERS[0]}:{DEFAULT_WORKERS[1]}",
    show_default=True,
    help="Workers per function: N or MIN:MAX.",
)
@click.option("--max-pending", type=int, default=None, help="Calls allowed to wait for a worker (then 429).")
@click.option(
    "--token-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="File holding the bearer token every route but /healthz then requires.",
)
@click.option("--debug", is_flag=True, help="Tracebacks in error responses.")
@click.option(
    "--backend",
    type=click.Choice(backend_names()),
    default=LOCAL_BACKEND,
    show_default=True,
    help="local: this process; ray: Ray Serve deployments autoscaled by Ray (extra satchel[ray]).",
)
@click.option(
    "--ray-address",
    default=None,
    help="With --backend ray: the Ray cluster (default: $RAY_ADDRESS or a local Ray).",
)
@click.option(
    "--replica-cpus",
    type=click.FloatRange(min=0),
    default=None,
    help="With --backend ray: CPUs Ray reserves per function replica (default 1: its worker runs one call "
    "at a time); a fraction packs more replicas on a node.",
)
@click.option(
    "--deployment",
    "deployments",
    multiple=True,
    metavar="NAME",
    help="Serve this deployment's stable version; audit and promote its candidates (repeatable).",
)
@click.option("--store", "-s", help="Store holding the deployment registry (default: $SATCHEL_STORE).")
@click.option(
    "--poll-interval",
    type=float,
    default=DEFAULT_POLL_INTERVAL,
    show_default=True,
    help="Seconds between registry polls.",
)
@click.option(
    "--claim-lease",
    type=float,
    default=DEFAULT_LEASE,
    show_default=True,
    help="Seconds without a heartbeat after which another machine's server takes over a candidate's audit.",
)
@click.option(
    "--scale-down-after",
    type=click.FloatRange(min=0),
    default=DEFAULT_SCALE_DOWN_AFTER,
    show_default=True,
    help="Seconds a worker stays idle before autoscaling stops it (down to MIN of --workers).",
)
@click.option(
    "--function-workers",
    "function_workers",
    multiple=True,
    metavar="NAME=MIN:MAX",
    help="Workers of one function, overriding --workers (repeatable).",
)
@click.option(
    "--job-ttl",
    type=click.FloatRange(min=0),
    default=DEFAULT_JOB_TTL,
    show_default=True,
    help="Seconds the result of a finished async job is kept.",
)
@click.option(
    "--max-body",
    default=human_size(DEFAULT_MAX_BODY),
    show_default=True,
    help="Largest request body accepted (bytes, or 32MB, 64MiB); larger ones get 413.",
)
@click.option(
    "--drain-timeout",
    type=click.FloatRange(min=0),
    default=DEFAULT_DRAIN_TIMEOUT,
    show_default=True,
    help="On SIGTERM, seconds to let in-flight requests finish (new ones get 503) before stopping.",
)
def serve_command(
    refs,
    host,
    port,
    grpc_port,
    workers,
    max_pending,
    token_file,
    debug,
    backend,
    ray_address,
    replica_cpus,
    deployments,
    store,
    poll_interval,
    claim_lease,
    scale_down_after,
    function_workers,
    job_ttl,
    max_body,
    drain_timeout,
) -> None:
    """Host functions as REST endpoints: POST /v1/functions/NAME:invoke, /docs, /metrics (and over gRPC,
    satchel.v1.Functions, with --grpc-port)."""
    from .extras import require_serving
    from .server import serve

    require_serving(backend, grpc=grpc_port is not None)
    if not refs and not deployments:
        raise click.UsageError("give at least one REF to serve, or --deployment NAME")
    overrides = {}
    for item in function_workers:
        name, sep, spec = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(
                f"{item!r}: expected NAME=N or NAME=MIN:MAX", param_hint="--function-workers"
            )
        overrides[name] = spec
    token = None
    if token_file is not None:
        token = token_file.read_text().strip()
        if not token:
            raise click.BadParameter(f"{token_file} is empty", param_hint="--token-file")
    try:
        options = ServeOptions(
            host=host,
            port=port,
            workers=workers,
            max_pending=max_pending,
            token=token,
            debug=debug,
            backend=backend,
            address=ray_address,
            function_workers=overrides,
            scale_down_after=scale_down_after,
            job_ttl=job_ttl,
            max_body_bytes=max_body,
            drain_timeout=drain_timeout,
            grpc_port=grpc_port,
            replica_cpus=replica_cpus,
            deployments=deployments,
            store=store,
            poll_interval=poll_interval,
            claim_lease=claim_lease,
        )
        options.check_backend()
    except OptionError as exc:
        raise click.BadParameter(str(exc), param_hint=_FLAGS.get(exc.option, exc.option)) from None
    serve(list(refs), options)


#: The flag of each ServeOptions field whose name differs from it.
_FLAGS = {
    "address": "--ray-address",
    "token": "--token-file",
    "max_body_bytes": "--max-body",
    "deployments": "--deployment",
}
_FLAGS.update({f: "--" + f.replace("_", "-") for f in FIELDS if f not in _FLAGS})
