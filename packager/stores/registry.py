"""Store URL -> backend. A new backend is one module with a `Store` subclass and one line here."""

from __future__ import annotations

import re

from satchel.core import settings as config
from satchel.core.errors import StoreError, UnknownStoreScheme
from satchel.core.registry import Entry, Registry
from satchel.packager.stores.base import Store

#: scheme -> "module:class". Imported only when a URL of that scheme is opened, so a backend's
#: optional dependencies (boto3 for s3) are needed only by those who use it.
BACKENDS: Registry[type[Store]] = Registry(
    "store URL scheme",
    {
        "file": Entry("satchel.packager.stores.file:FileStore"),
        "s3": Entry("satchel.packager.stores.s3:S3Store", extra="s3"),
    },
    unknown=UnknownStoreScheme,
)

# `scheme://...` or `scheme:/...`; anything else is a plain filesystem path. A one-letter scheme
# is a Windows drive (C:\store, C:/store), not a URL.
_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]+):/")


def backend_for(scheme: str) -> type[Store]:
    """The Store class registered for `scheme`; UnknownStoreScheme if there is none."""
    scheme = scheme.lower()
    if scheme not in BACKENDS:
        supported = ", ".join(f"{name}://" for name in BACKENDS.names())
        raise UnknownStoreScheme(
            f"unknown store URL scheme {scheme!r}: supported schemes are {supported} "
            f"(or a plain directory path)"
        )
    return BACKENDS.get(scheme)


def url_scheme(url: str) -> str | None:
    """The scheme of a store URL, or None when `url` is a plain path."""
    match = _URL.match(url)
    return match.group("scheme").lower() if match else None


def open_store(url: str | None = None) -> Store:
    """Open the store at `url`: `file:///abs/path`, a plain path (relative or absolute, `~`
    expanded), or `s3://bucket/prefix`. None means the default store (SATCHEL_STORE)."""
    if url is None:
        url = config.default_store_url()
    url = str(url)
    if not url.strip():
        raise StoreError("empty store URL: give a directory path, file:///abs/path or s3://bucket/prefix")
    scheme = url_scheme(url)
    if scheme is None:
        return backend_for("file").from_url(url)
    return backend_for(scheme).from_url(url)
