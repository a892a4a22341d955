"""serve(): load the functions and run the REST gateway under uvicorn."""

from __future__ import annotations

import sys
from typing import Any

from satchel.core import settings
from satchel.runtime.pool import DEFAULT_MAX_PENDING
from satchel.runtime.proxy import LoadedFunction

from .extras import require_serving
from .logs import configure_logging
from .options import LOCAL_BACKEND, ServeOptions, Workers, parse_workers

__all__ = ["banner", "load_all", "parse_workers", "serve", "serving_transport"]


#: Hosted functions talk to their workers over pipes: the gateways await replies on the event loop itself
#: (no thread per call), which only a transport with a file descriptor allows. SATCHEL_TRANSPORT overrides.
def serving_transport() -> str:
    return settings.raw("SATCHEL_TRANSPORT") or "pipe"


def load_all(
    refs: list[str], *, workers: Workers = 1, max_pending: int | None = None
) -> dict[str, LoadedFunction]:
    """Load each reference, named by its bundle name, with MIN workers (an Autoscaler grows them to MAX)."""
    from satchel.runtime.load import load

    low, _ = parse_workers(workers)
    loaded: dict[str, LoadedFunction] = {}
    try:
        for ref in refs:
            fn = load(
                ref,
                workers=low,
                max_pending=max_pending or DEFAULT_MAX_PENDING,
                transport=serving_transport(),
            )
            name = fn.metadata["name"] if "name" in fn.metadata else str(ref)
            if name in loaded:
                fn.close()
                raise ValueError(f"two references name the function {name!r}")
            loaded[name] = fn
    except BaseException:
        for fn in loaded.values():
            fn.close()
        raise
    return loaded


def serve(refs: list[str], options: ServeOptions | None = None, **kwargs: Any) -> None:
    """Host `refs` over REST until interrupted (Ctrl-C drains in-flight requests, then stops the workers).

    `options`, or its fields as keywords (ServeOptions, serving/options.py: each option and its default);
    other keywords go to `uvicorn.Config`. `backend="ray"`: as Ray Serve deployments on the Ray cluster at
    `address` (see serving/backends/ray.py). Request bodies over `max_body_bytes` (bytes, or "32MB",
    "64MiB") get 413. On SIGTERM / Ctrl-C the server drains (drain.py): /readyz and new requests answer 503
    while in-flight ones (REST and gRPC) finish, for at most `drain_timeout` seconds. Traces export as
    $SATCHEL_TRACE_EXPORTER / $OTEL_TRACES_EXPORTER say (tracing.py). `grpc_port` (0: any free port,
    logged): also serve gRPC (serving/grpc/) on `host`, same process. `replica_cpus` (cluster backends):
    CPUs reserved per function replica. `claim_lease`: seconds without a heartbeat after which another
    machine's server takes over a deployment candidate whose auditing server went silent
    (serving/deploy/watcher.py)."""
    fields, uvicorn_options = ServeOptions.split(kwargs)
    options = ServeOptions.of(options, **fields)
    require_serving(options.backend, grpc=options.grpc_port is not None)
    options.check_backend()
    if options.backend != LOCAL_BACKEND:
        from .backends import get_backend

        _serve_on(get_backend(options.backend), refs, options)
        return
    import uvicorn

    from .app import create_app
    from .drain import DrainingServer
    from .tracing import configure_tracing

    configure_logging(options.debug)
    configure_tracing()
    app = create_app(refs, options)
    uvicorn_options.setdefault("access_log", False)  # ours is JSON, with the request id
    uvicorn_options.setdefault("log_level", "info")
    config = uvicorn.Config(app, host=options.host, port=options.port, **uvicorn_options)
    deployments = options.deployments

    class Announcing(DrainingServer):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if self.started and self.servers and self.servers[0].sockets:
                bound = self.servers[0].sockets[0].getsockname()[1]
                state = app.state
                functions = [*sorted(state.functions), *(d for d in deployments if d not in state.functions)]
                grpc = getattr(state, "grpc_port", None)
                print(banner(functions, options.host, bound, grpc), file=sys.stderr, flush=True)

    Announcing(config, drain_timeout=options.drain_timeout).run()


def banner(functions: list[str], host: str, port: int, grpc_port: int | None = None) -> str:
    """What a started server says: the functions it serves, its ports and the URL of its docs."""
    base = f"http://{host}:{port}"
    lines = [
        f"serving {', '.join(functions) or 'no function yet'}",
        f"  REST  {base}/v1/functions/{{name}}:invoke",
    ]
    if grpc_port is not None:
        lines.append(f"  gRPC  {host}:{grpc_port} (satchel.v1.Functions)")
    lines.append(f"  docs  {base}/docs")
    return "\n".join(lines)


def _serve_on(backend: Any, refs: list[str], options: ServeOptions) -> None:
    """Start `backend`, then wait for Ctrl-C (or SIGTERM) and stop it."""
    import signal
    import threading

    stop = threading.Event()
    try:
        url = backend.start(refs, options)
        for sig in (signal.SIGINT, signal.SIGTERM):  # after start: Ray sets handlers of its own
            signal.signal(sig, lambda *_: stop.set())
        print(f"serving {', '.join(refs)} at {url} (Ctrl-C to stop)", file=sys.stderr, flush=True)
        print(f"  docs  {url.rstrip('/')}/docs", file=sys.stderr, flush=True)
        stop.wait()
    finally:
        backend.stop()
