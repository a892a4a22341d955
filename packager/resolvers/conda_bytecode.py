"""The bytecode of a conda prefix's packages, each package compiled once per machine: run by the prefix's
own interpreter (standard library only, Python 3.9+), as `python conda_bytecode.py PREFIX CACHE`.

Compiling is most of building a prefix from a warm package cache (seconds for a few hundred modules, where
linking the files takes a tenth of that), so the .pyc files of each package (the Python sources of its
`site-packages` files, as its `conda-meta` record lists them) are kept in `CACHE/<package sha256>-<cache
tag>/` and hard-linked into the next prefix that installs the same package. A package without them is
compiled (in parallel) and then copied there. The pycs are checked-hash ones: on import the interpreter
compares each with its source's hash, so one that does not match its source is never used, whatever the
files' times; and a pyc is replaced (never written through), so linking it into many prefixes is safe.
"""

import concurrent.futures
import glob
import importlib.util
import json
import os
import py_compile
import shutil
import sys
import tempfile


def _sources(prefix):
    """{package sha256: [absolute paths of its Python sources under site-packages]}"""
    packages = {}
    for meta in glob.glob(os.path.join(prefix, "conda-meta", "*.json")):
        with open(meta, encoding="utf-8") as fh:
            record = json.load(fh)
        files = record.get("files") or []
        shipped = set(files)
        sources = []
        for rel in files:
            if not rel.endswith(".py") or "site-packages/" not in rel:
                continue
            path = os.path.join(prefix, rel)
            if os.path.relpath(importlib.util.cache_from_source(path), prefix) not in shipped:
                sources.append(path)
        if sources and record.get("sha256"):
            packages[record["sha256"]] = sources
    return packages


def _compile(path):
    try:
        py_compile.compile(path, doraise=True, invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)
    except (py_compile.PyCompileError, OSError, ValueError):
        pass  # a file that does not compile (a Python 2 test file, say) gets no pyc, as with compileall


def _link(source, target):
    os.makedirs(os.path.dirname(target), exist_ok=True)
    try:
        os.link(source, target)
    except OSError:  # another file system, or no hard links there
        shutil.copyfile(source, target)


def _copy_in(prefix, sources, cached):
    """The pycs of `sources` into the cache directory `cached`, which appears complete or not at all."""
    os.makedirs(os.path.dirname(cached), exist_ok=True)
    partial = tempfile.mkdtemp(prefix=".partial-", dir=os.path.dirname(cached))
    for path in sources:
        pyc = importlib.util.cache_from_source(path)
        if os.path.exists(pyc):
            _link(pyc, os.path.join(partial, os.path.relpath(pyc, prefix)))
    try:
        os.rename(partial, cached)
    except OSError:  # another build cached the same package first
        shutil.rmtree(partial, ignore_errors=True)


def main(prefix, cache):
    tag = sys.implementation.cache_tag
    todo = {}
    for sha256, sources in _sources(prefix).items():
        cached = os.path.join(cache, f"{sha256}-{tag}")
        if os.path.isdir(cached):
            for path in sources:
                pyc = importlib.util.cache_from_source(path)
                kept = os.path.join(cached, os.path.relpath(pyc, prefix))
                if os.path.exists(kept):
                    _link(kept, pyc)
        else:
            todo[cached] = sources
    paths = [path for sources in todo.values() for path in sources]
    if not paths:
        return
    try:
        with concurrent.futures.ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            list(pool.map(_compile, paths, chunksize=16))
    except (ImportError, NotImplementedError, OSError):  # no working multiprocessing here: one by one
        for path in paths:
            _compile(path)
    for cached, sources in todo.items():
        _copy_in(prefix, sources, cached)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
