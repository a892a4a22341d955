"""create_app: the REST gateway (FastAPI) over loaded functions."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import FastAPI

from satchel.runtime.proxy import LoadedFunction

from .auth import BearerAuth
from .drain import Drain
from .hosting import Hosting
from .options import APP_DEFAULTS, ServeOptions
from .rest import docs, invoke, openapi, probes
from .rest import jobs as job_routes
from .rest.fastlane import GatewayApp
from .rest.limits import BodyLimit
from .tracing import RequestIds, Tracing

#: create_app's older keywords for ServeOptions fields (gRPC listens on the server's host, and drains as
#: long as REST does).
_ALIASES = {"grpc_host": "host", "grpc_grace": "drain_timeout"}


def create_app(
    functions: Hosting | Mapping[str, LoadedFunction] | Iterable[str],
    options: ServeOptions | None = None,
    **kwargs: Any,
) -> FastAPI:
    """The ASGI app serving `functions`: a Hosting (shared with other gateways; closed by its owner), a
    mapping name -> LoadedFunction (the caller keeps them and closes them), or bundle references, loaded
    here (by their bundle names) and closed at shutdown.

    `options`, or its fields as keywords (ServeOptions; unless given, `workers` is APP_WORKERS here).
    With `grpc_port` (0 picks a free one), the app's lifespan also runs the gRPC gateway (serving/grpc/) on
    the same event loop and Hosting, at `host`:`app.state.grpc_port`; at shutdown it drains for up to
    `drain_timeout` seconds.
    """
    kwargs = {_ALIASES.get(name, name): value for name, value in kwargs.items()}
    options = ServeOptions.of(APP_DEFAULTS if options is None else options, **kwargs)
    if isinstance(functions, Hosting):
        hosting, owns_hosting = functions, False
    else:
        hosting = Hosting.of(functions, options)
        owns_hosting = True
    if options.deployments:  # serve each one's stable version; audit and promote its candidates (deploy/)
        from .deploy.watcher import watch_deployments

        try:
            watch_deployments(
                hosting,
                options.deployments,
                store=options.store,
                poll_interval=options.poll_interval,
                claim_lease=options.claim_lease,
                workers=options.workers,
                max_pending=options.max_pending,
            )
        except BaseException:
            if owns_hosting:
                hosting.close()
            raise
    hosted = hosting.functions
    metrics = hosting.metrics
    token, debug = hosting.token, hosting.debug

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        grpc_server = None
        try:
            if options.grpc_port is not None:
                from .grpc import start_grpc_server

                drain = getattr(app.state, "drain", None)  # gRPC calls join the REST drain (drain.py)
                grpc_server = await start_grpc_server(
                    hosting, host=options.host, port=options.grpc_port, drain=drain
                )
                app.state.grpc_port = grpc_server.port
            yield
        finally:
            if grpc_server is not None:
                await grpc_server.stop(options.drain_timeout)
            if owns_hosting:
                await hosting.jobs.aclose()  # their calls are cancelled in the workers, not drained
                # on a thread: calls awaited on this loop must still get their replies while workers stop
                await asyncio.to_thread(hosting.close)

    app = GatewayApp(title=options.title, debug=False, lifespan=lifespan, docs_url=None, redoc_url=None)
    docs.add_docs(app, title=options.title)
    app.state.hosting = hosting
    app.state.functions = hosted
    app.state.metrics = metrics
    documents: dict = {}

    def current_openapi() -> dict:  # rebuilt when a deployment swaps a function
        key = tuple((name, id(h)) for name, h in list(hosted.items()))
        if documents.get("key") != key:
            document = openapi.build_openapi(dict(hosted), title=options.title, secured=token is not None)
            documents.update(key=key, doc=document)
        return documents["doc"]

    app.openapi = current_openapi  # type: ignore[method-assign]
    invoke_app = invoke.Invoke(hosted, metrics, debug=debug)  # an ASGI app: FastAPI's route and the fast lane
    app.add_route(invoke.PATH, invoke_app, methods=["POST"], include_in_schema=False)
    app.add_route(
        job_routes.SUBMIT_PATH, job_routes.make_submit(hosting), methods=["POST"], include_in_schema=False
    )
    app.add_route(
        job_routes.JOB_PATH,
        job_routes.make_job(hosting),
        methods=list(job_routes.JOB_METHODS),
        include_in_schema=False,
    )
    app.add_route("/healthz", probes.healthz, methods=["GET"], include_in_schema=False)
    app.add_route("/readyz", probes.make_readyz(hosted), methods=["GET"], include_in_schema=False)
    app.add_route("/metrics", probes.make_metrics(hosted, metrics), methods=["GET"], include_in_schema=False)
    app.state.drain = Drain()  # turned on by DrainingServer when asked to stop (drain.py)
    per_request = _per_request_middleware(token, options.max_body_bytes, app.state.drain)
    for factory in reversed(per_request):  # FastAPI's routes get the same middleware as the fast lane
        app.add_middleware(factory)
    lane = invoke_app
    for factory in reversed(per_request):
        lane = factory(lane)
    app.fast_lane = lane
    return app


def _per_request_middleware(token: str | None, max_body_bytes: int, drain: Drain) -> list:
    """Satchel's ASGI middleware, outermost first: request ids (so 401s carry one too), drain, tracing
    (a server span per request, when traced), the body limit (413 before a large body is read), auth."""
    factories = [
        RequestIds,
        drain.middleware,
        Tracing,
        functools.partial(BodyLimit, max_bytes=max_body_bytes),
    ]
    if token is not None:
        factories.append(functools.partial(BearerAuth, token=token))
    return factories
