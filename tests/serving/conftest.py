"""Functions of tests/functions/textutil.py exported once per module, loaded, and served for real."""

from __future__ import annotations

import pytest

import satchel
from tests.functions import textutil

NAMES = ["describe", "add", "scale", "fail", "crash", "nap"]


@pytest.fixture(scope="module")
def refs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    store = (tmp_path_factory.mktemp("store") / "s").as_uri()
    return {name: getattr(textutil, name).export(name=name, store=store) for name in NAMES}


@pytest.fixture(scope="module")
def loaded(refs):
    fns = {}
    try:
        for name, ref in refs.items():
            # nap: one worker and one waiting call, to reach 429 and 504 deterministically
            options = {"workers": 1, "max_pending": 1} if name == "nap" else {"workers": 2}
            fns[name] = satchel.load(ref, **options)
        yield fns
    finally:
        for fn in fns.values():
            fn.close()
