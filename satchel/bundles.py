"""The bundles of the default store (SATCHEL_STORE) by name, as loaded functions:

    from satchel.bundles import churn         # or: import satchel.bundles as b; b.churn
    churn(customer)

A name gives the latest version's proxy, loaded as `satchel.load(name, workers=0)`: its blobs are
verified and its environment materialized when it is imported (with progress), its worker starts on
the first call and then stays up until `churn.close()` or the interpreter exits. Importing it again
gives the same proxy, unless a newer version was exported since: then the new one, and the old one's
worker stops once nothing refers to it. `dir(satchel.bundles)` lists the names there, so they
tab-complete. In a name, `-` and `.` become `_` (`my-model` is `my_model`; a bundle named exactly so
wins); a name that still is not an identifier (it starts with a digit, or is a keyword, or `get`) is
reached as written: `satchel.bundles["2024-model"]`, and a given version or any other reference with
`satchel.bundles.get("my-model:3")`.
"""

import difflib as _difflib
import keyword as _keyword
import sys as _sys
import threading as _threading
import types as _types
from typing import TYPE_CHECKING as _TYPE_CHECKING

from satchel.core.errors import UnknownBundle as _UnknownBundle

if _TYPE_CHECKING:
    from satchel.runtime.proxy import LoadedFunction

__all__ = ["get"]

_loaded: "dict[str, LoadedFunction]" = {}  # by pinned reference (its version and digest)
_lock = _threading.Lock()


def get(ref: str) -> "LoadedFunction":
    """The loaded function of `ref`: a name ("my-model"), a version ("my-model:3") in the default store,
    or a whole reference; the same proxy for the same bundle (see the module's doc)."""
    from satchel.packager.bundle import read_bundle
    from satchel.runtime.load import load

    bundle, _ = read_bundle(ref)
    key = str(bundle.ref)
    with _lock:
        fn = _loaded.get(key)
        if fn is None or fn.closed:
            fn = _loaded[key] = load(bundle.ref, workers=0)
            # an older version is no longer kept here: it lives, and its worker runs, while a holder keeps it
            for other, older in list(_loaded.items()):
                if older.ref.store == fn.ref.store and older.ref.name == fn.ref.name:
                    if older.ref.version < fn.ref.version:
                        del _loaded[other]
        return fn


def _attribute_name(name: str) -> str | None:
    """The attribute a bundle name is reached by (`my-model` -> `my_model`); None when there is none."""
    attribute = name.replace("-", "_").replace(".", "_")
    if not attribute.isidentifier() or _keyword.iskeyword(attribute) or attribute.startswith("_"):
        return None
    if attribute in __all__:
        return None
    return attribute


def _store():
    from satchel.core import settings
    from satchel.packager.stores import open_store

    return open_store(settings.default_store_url())


def _by_attribute(names: list[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name in names:
        attribute = _attribute_name(name)
        if attribute is not None:
            found.setdefault(attribute, []).append(name)
    return found


def __getattr__(attribute: str) -> "LoadedFunction":
    if attribute.startswith("_"):  # __path__, _repr_html_, ...: what tools look for on any module
        raise AttributeError(f"module {__name__!r} has no attribute {attribute!r}")
    return _resolve(attribute)


def _resolve(attribute: str) -> "LoadedFunction":
    from satchel.packager.bundle import list_names

    store = _store()
    names = list_names(store)
    if attribute in names:  # a bundle named exactly so wins over one that maps to it
        return get(f"{store.url}#{attribute}")
    candidates = _by_attribute(names).get(attribute, [])
    if len(candidates) == 1:
        return get(f"{store.url}#{candidates[0]}")
    if candidates:
        quoted = " or ".join(f"satchel.bundles[{n!r}]" for n in candidates)
        raise _UnknownBundle(
            f"{attribute!r} names several bundles in {store.url}: {', '.join(candidates)}; use {quoted}",
            name=attribute,
        )
    close = _difflib.get_close_matches(attribute, sorted({*names, *_by_attribute(names)}), n=3)
    if close:
        hint = f" Did you mean {', '.join(close)}?"
    elif names:
        hint = f" Bundles there: {', '.join(names[:10])}{', …' if len(names) > 10 else ''}."
    else:
        hint = " The store holds no bundles (SATCHEL_STORE sets the default store)."
    raise _UnknownBundle(f"no bundle named {attribute!r} in {store.url}.{hint}", name=attribute)


def __dir__() -> list[str]:
    """The names of the store's bundles, as attributes (tab completion), and `get`."""
    from satchel.packager.bundle import list_names

    attributes = _by_attribute(list_names(_store()))
    for attribute in attributes:
        if attribute not in vars(_Module):
            setattr(_Module, attribute, _Attribute(attribute))
    return sorted({*attributes, *__all__})


class _Attribute:
    """A name `dir` listed, on the module's class: a completer that looks attributes up statically
    (jedi's, in IPython) finds it there and offers it without loading the bundle; read, it resolves as
    `__getattr__` does (a name since removed is an ImportError naming the store)."""

    def __init__(self, attribute: str) -> None:
        self.attribute = attribute

    def __get__(self, module: object, owner: object = None) -> "LoadedFunction | _Attribute":
        if module is None:  # looked up on the class itself
            return self
        return _resolve(self.attribute)


class _Module(_types.ModuleType):
    """This module, subscriptable: `satchel.bundles["my-model"]` for any name."""

    def __getitem__(self, ref: str) -> "LoadedFunction":
        return get(ref)


_sys.modules[__name__].__class__ = _Module
