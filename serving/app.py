"""create_app: the REST gateway (FastAPI) over loaded functions."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping

from fastapi import FastAPI

from satchel.runtime.proxy import LoadedFunction

from .auth import BearerAuth
from .hosting import Hosting
from .rest import invoke, openapi, probes
from .tracing import RequestIds


def create_app(
    functions: Hosting | Mapping[str, LoadedFunction] | Iterable[str],
    *,
    workers: int | tuple[int, int] | str = 1,
    max_pending: int | None = None,
    token: str | None = None,
    debug: bool = False,
    title: str = "Satchel",
) -> FastAPI:
    """The ASGI app serving `functions`: a Hosting (shared with other gateways; closed by its owner), a
    mapping name -> LoadedFunction (the caller keeps them and closes them), or bundle references, loaded
    here (by their bundle names) and closed at shutdown.
    """
    if isinstance(functions, Hosting):
        hosting, owns_hosting = functions, False
    else:
        hosting = Hosting.of(functions, workers=workers, max_pending=max_pending, token=token, debug=debug)
        owns_hosting = True
    hosted = hosting.functions
    metrics = hosting.metrics
    token, debug = hosting.token, hosting.debug

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        try:
            yield
        finally:
            if owns_hosting:
                hosting.close()

    app = FastAPI(title=title, debug=False, lifespan=lifespan, redoc_url=None)
    app.state.hosting = hosting
    app.state.functions = hosted
    app.state.metrics = metrics
    document = openapi.build_openapi(hosted, title=title, secured=token is not None)
    app.openapi = lambda: document  # type: ignore[method-assign]
    app.add_route(
        invoke.PATH,
        invoke.make_invoke(hosted, metrics, debug=debug),
        methods=["POST"],
        include_in_schema=False,
    )
    app.add_route("/healthz", probes.healthz, methods=["GET"], include_in_schema=False)
    app.add_route("/readyz", probes.make_readyz(hosted), methods=["GET"], include_in_schema=False)
    app.add_route("/metrics", probes.make_metrics(hosted, metrics), methods=["GET"], include_in_schema=False)
    if token is not None:
        if not token:
            raise ValueError("an empty token would let anyone in")
        app.add_middleware(BearerAuth, token=token)
    app.add_middleware(RequestIds)  # outermost: 401s carry a request id too
    return app
