"""`satchel.load(ref)`: a bundle reference in, a callable proxy out."""

from __future__ import annotations

import sys

from satchel.packager.bundle import read_bundle
from satchel.packager.refs import BundleRef
from satchel.runtime.fetch import prepare
from satchel.runtime.proxy import LoadedFunction, make_proxy


def load(ref: BundleRef | str, *, transport: str = "pipe", progress: bool | None = None) -> LoadedFunction:
    """Load a bundle and start its worker.

    `ref`: a BundleRef, its string form (`file:///tmp/store#describe:3`, `s3://bucket/prefix#describe`),
    or `describe` / `describe:3` in the default store (SATCHEL_STORE).
    """
    if progress is None:
        progress = sys.stderr.isatty()
    bundle, store = read_bundle(ref)
    local = prepare(bundle, store, progress=progress)
    return make_proxy(bundle, local, transport=transport)
