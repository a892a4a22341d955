"""`satchel.load(ref)`: a bundle reference in, a callable proxy out."""

from __future__ import annotations

import contextlib

from satchel.bindings.transports import default_transport
from satchel.core import progress as _progress
from satchel.core.progress import Reporter
from satchel.packager.bundle import read_bundle
from satchel.packager.refs import BundleRef
from satchel.runtime.fetch import prepare
from satchel.runtime.pool import DEFAULT_MAX_PENDING
from satchel.runtime.process import DEFAULT_GRACE
from satchel.runtime.proxy import LoadedFunction, make_proxy


def load(
    ref: BundleRef | str,
    *,
    workers: int = 1,
    max_pending: int = DEFAULT_MAX_PENDING,
    cancel_grace: float = DEFAULT_GRACE,
    transport: str | None = None,
    progress: bool | Reporter | None = None,
) -> LoadedFunction:
    """Load a bundle and start its worker.

    `ref`: a BundleRef, its string form (`file:///tmp/store#describe:3`, `s3://bucket/prefix#describe`),
    or `describe` / `describe:3` in the default store (SATCHEL_STORE).
    `transport`: "shm" (the shared-memory ring) or "pipe"; default: `default_transport()`, which is
    "shm" on Linux when the ring library loads, else "pipe" (`SATCHEL_TRANSPORT` overrides).
    `workers`: worker processes, each with its own channel; calls from many threads or asyncio tasks go
    to idle workers; 0 starts none until the first call (which then waits for one) or `fn.scale(n)`,
    which changes the number of workers at any time. `max_pending`: calls allowed to wait for a worker before `satchel.Overloaded`.
    `cancel_grace`: seconds a timed-out or cancelled call has to stop before its worker is replaced (the
    caller does not wait for it: CallTimeout comes at the deadline).
    `progress`: where the slow first load (materializing the environment, starting the first worker)
    shows: by default a spinner on a terminal or in Jupyter, else INFO lines on the `satchel.progress`
    logger; True: rich on stderr; False: the logger only; or a `satchel.core.progress.Reporter`. A warm load
    shows nothing.
    """
    if transport is None:
        transport = default_transport()
    with _progress.reporting(_progress.reporter_for(progress)):
        bundle, store = read_bundle(ref)
        local = prepare(bundle, store)
        title = f"starting {workers} worker{'s' if workers != 1 else ''} of {bundle.name}"
        with _progress.stage(title, quiet=True) if workers else contextlib.nullcontext():
            return make_proxy(
                bundle,
                local,
                transport=transport,
                workers=workers,
                max_pending=max_pending,
                cancel_grace=cancel_grace,
            )
