"""serve(): load the functions and run the REST gateway under uvicorn."""

from __future__ import annotations

import sys
from typing import Any

from satchel.core import settings
from satchel.runtime.pool import DEFAULT_MAX_PENDING
from satchel.runtime.proxy import LoadedFunction

from .deploy.registry import DEFAULT_LEASE
from .extras import require_serving
from .logs import configure_logging


#: Hosted functions talk to their workers over pipes: the gateways await replies on the event loop itself
#: (no thread per call), which only a transport with a file descriptor allows. SATCHEL_TRANSPORT overrides.
def serving_transport() -> str:
    return settings.raw("SATCHEL_TRANSPORT") or "pipe"


def parse_workers(workers: int | tuple[int, int] | str) -> tuple[int, int]:
    """(min, max) from 3, (1, 4) or "1:4"; ValueError otherwise."""
    if isinstance(workers, str):
        low, sep, high = workers.partition(":")
        try:
            pair = (int(low), int(high if sep else low))
        except ValueError:
            raise ValueError(f"workers {workers!r}: expected N or MIN:MAX") from None
    elif isinstance(workers, int):
        pair = (workers, workers)
    else:
        pair = (int(workers[0]), int(workers[1]))
    if pair[0] < 0 or pair[1] < 1 or pair[0] > pair[1]:
        raise ValueError(f"workers {workers!r}: need 0 <= MIN <= MAX and MAX >= 1")
    return pair


def load_all(
    refs: list[str], *, workers: int | tuple[int, int] | str = 1, max_pending: int | None = None
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


def serve(
    refs: list[str],
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int | tuple[int, int] | str = (1, 4),
    max_pending: int | None = None,
    token: str | None = None,
    debug: bool = False,
    backend: str = "local",
    address: str | None = None,
    deployments: list[str] | tuple[str, ...] = (),
    store: str | None = None,
    poll_interval: float = 2.0,
    scale_down_after: float = 60.0,
    job_ttl: float = 3600.0,
    function_workers: dict[str, int | tuple[int, int] | str] | None = None,
    max_body_bytes: int | str = 64 * 1024 * 1024,
    drain_timeout: float = 30.0,
    grpc_port: int | None = None,
    replica_cpus: float | None = None,
    claim_lease: float = DEFAULT_LEASE,
    **uvicorn_options: Any,
) -> None:
    """Host `refs` over REST until interrupted (Ctrl-C drains in-flight requests, then stops the workers).
    `backend="ray"`: as Ray Serve deployments on the Ray cluster at `address` (see serving/backends/ray.py).
    Request bodies over `max_body_bytes` (bytes, or "32MB", "64MiB") get 413. On SIGTERM / Ctrl-C the server
    drains (drain.py): /readyz and new requests answer 503 while in-flight ones finish, for at most
    `drain_timeout` seconds. Traces export as $SATCHEL_TRACE_EXPORTER / $OTEL_TRACES_EXPORTER say (tracing.py).
    `grpc_port` (0: any free port, logged): also serve gRPC (serving/grpc/) on `host`, same process.
    `replica_cpus` (cluster backends): CPUs reserved per function replica (None: the backend's default).
    `claim_lease`: seconds without a heartbeat after which another machine's server takes over a deployment
    candidate whose auditing server went silent (serving/deploy/watcher.py)."""
    require_serving(backend, grpc=grpc_port is not None)
    if deployments and backend != "local":
        raise ValueError(f"deployments are watched by the local backend only, not backend={backend!r}")
    if grpc_port is not None and backend != "local":
        raise ValueError(f"gRPC is served by the local backend only, not backend={backend!r}")
    if replica_cpus is not None and backend == "local":
        raise ValueError("replica_cpus applies to a cluster backend (backend='ray'), not backend='local'")
    if backend != "local":
        from .backends import ServeOptions, get_backend
        from .rest.limits import parse_size

        options = ServeOptions(
            host=host,
            port=port,
            workers=parse_workers(workers),
            max_pending=max_pending,
            token=token,
            debug=debug,
            address=address,
            function_workers={name: parse_workers(w) for name, w in (function_workers or {}).items()},
            scale_down_after=scale_down_after,
            job_ttl=job_ttl,
            max_body_bytes=parse_size(max_body_bytes),
            **({} if replica_cpus is None else {"replica_cpus": replica_cpus}),
        )
        _serve_on(get_backend(backend), refs, options)
        return
    import uvicorn

    from .app import create_app
    from .drain import DrainingServer
    from .rest.limits import parse_size
    from .tracing import configure_tracing

    configure_logging(debug)
    configure_tracing()
    max_body = parse_size(max_body_bytes)
    app = create_app(
        refs,
        workers=workers,
        max_pending=max_pending,
        token=token,
        debug=debug,
        deployments=deployments,
        store=store,
        poll_interval=poll_interval,
        claim_lease=claim_lease,
        scale_down_after=scale_down_after,
        job_ttl=job_ttl,
        function_workers=function_workers,
        max_body_bytes=max_body,
        grpc_port=grpc_port,
        grpc_host=host,
        grpc_grace=drain_timeout,
    )
    uvicorn_options.setdefault("access_log", False)  # ours is JSON, with the request id
    uvicorn_options.setdefault("log_level", "info")
    config = uvicorn.Config(app, host=host, port=port, **uvicorn_options)

    class Announcing(DrainingServer):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if self.started and self.servers and self.servers[0].sockets:
                bound = self.servers[0].sockets[0].getsockname()[1]
                state = app.state
                functions = [*sorted(state.functions), *(d for d in deployments if d not in state.functions)]
                grpc = getattr(state, "grpc_port", None)
                print(banner(functions, host, bound, grpc), file=sys.stderr, flush=True)

    Announcing(config, drain_timeout=drain_timeout).run()


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


def _serve_on(backend: Any, refs: list[str], options: Any) -> None:
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
