"""serve(): load the functions and run the REST gateway under uvicorn."""

from __future__ import annotations

import logging
import sys
from typing import Any

from satchel.runtime.pool import DEFAULT_MAX_PENDING
from satchel.runtime.proxy import LoadedFunction


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
    """Load each reference, named by its bundle name. No autoscaling yet: MAX workers start now."""
    import satchel

    _, high = parse_workers(workers)
    loaded: dict[str, LoadedFunction] = {}
    try:
        for ref in refs:
            fn = satchel.load(ref, workers=high, max_pending=max_pending or DEFAULT_MAX_PENDING)
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


def configure_logging(debug: bool = False) -> None:
    """Access and error logs as lines on stderr (access lines are JSON documents)."""
    for name in ("satchel.serving.access", "satchel.serving.errors"):
        logger = logging.getLogger(name)
        if not logger.handlers:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(message)s"))
            logger.addHandler(handler)
        logger.setLevel(logging.DEBUG if debug else logging.INFO)
        logger.propagate = False


def serve(
    refs: list[str],
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int | tuple[int, int] | str = (1, 4),
    max_pending: int | None = None,
    token: str | None = None,
    debug: bool = False,
    **uvicorn_options: Any,
) -> None:
    """Host `refs` over REST until interrupted (Ctrl-C drains in-flight requests, then stops the workers)."""
    import uvicorn

    from .app import create_app

    configure_logging(debug)
    app = create_app(refs, workers=workers, max_pending=max_pending, token=token, debug=debug)
    uvicorn_options.setdefault("access_log", False)  # ours is JSON, with the request id
    uvicorn_options.setdefault("log_level", "info")
    uvicorn.run(app, host=host, port=port, **uvicorn_options)
