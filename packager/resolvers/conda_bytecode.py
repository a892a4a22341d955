"""The bytecode of a conda prefix's packages, each package compiled once per machine and interpreter.

Compiling is most of building a prefix from a warm package cache (seconds for a few hundred modules, where
linking the files takes a tenth of that), so the .pyc files of each package (those of the Python sources
among its `site-packages` files, as its `conda-meta` record lists them) are kept in a directory of their
own, laid out as in the prefix, and hard-linked into the next prefix that installs the same package with
the same interpreter: `link(cached, prefix)`, in Satchel's process. The packages without one are compiled
by the prefix's own interpreter running this file (standard library only, Python 3.9+):

    python -I conda_bytecode.py < {"prefix": PREFIX, "packages": {"<package sha256>": "<cache directory>"}}

which compiles them (in parallel) and then copies their pycs into those directories (an empty one for a
package with no Python sources). The pycs are checked-hash ones: on import the interpreter compares each
with its source's hash, so one that does not match its source is never used, whatever the files' times;
and a pyc is replaced, never written through, so linking one into many prefixes is safe.
"""

import json
import os
import shutil
import sys


def link(cached, prefix):
    """The pycs kept in `cached` hard-linked into `prefix` (only files under __pycache__ directories)."""
    with os.scandir(cached) as entries:
        for entry in entries:  # a scan, not a walk: its entries know their type without a stat each
            if not entry.is_dir(follow_symlinks=False):
                continue
            target = os.path.join(prefix, entry.name)
            if entry.name != "__pycache__":
                link(entry.path, target)
                continue
            os.makedirs(target, exist_ok=True)
            with os.scandir(entry.path) as pycs:
                for pyc in pycs:
                    if not pyc.name.endswith(".pyc") or not pyc.is_file(follow_symlinks=False):
                        continue
                    try:
                        os.link(pyc.path, os.path.join(target, pyc.name))
                    except FileExistsError:  # the package shipped its own
                        pass
                    except OSError:  # another file system, or no hard links there
                        shutil.copyfile(pyc.path, os.path.join(target, pyc.name))


def _sources(prefix, wanted):
    """{package sha256: [absolute paths of its Python sources under site-packages]}, for `wanted` ones."""
    import glob
    import importlib.util

    packages = {}
    for meta in glob.glob(os.path.join(prefix, "conda-meta", "*.json")):
        with open(meta, encoding="utf-8") as fh:
            record = json.load(fh)
        if record.get("sha256") not in wanted:
            continue
        files = record.get("files") or []
        shipped = set(files)
        sources = []
        for rel in files:
            if not rel.endswith(".py") or "site-packages/" not in rel:
                continue
            path = os.path.join(prefix, rel)
            if os.path.relpath(importlib.util.cache_from_source(path), prefix) not in shipped:
                sources.append(path)
        packages[record["sha256"]] = sources
    return packages


def _compile(path):
    import py_compile

    try:
        py_compile.compile(path, doraise=True, invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)
    except (py_compile.PyCompileError, OSError, ValueError):
        pass  # a file that does not compile (a Python 2 test file, say) gets no pyc, as with compileall


def _keep(prefix, sources, cached):
    """The pycs of `sources` into the directory `cached`, which appears complete or not at all."""
    import importlib.util
    import tempfile

    os.makedirs(os.path.dirname(cached), exist_ok=True)
    partial = tempfile.mkdtemp(prefix=".partial-", dir=os.path.dirname(cached))
    for path in sources:
        pyc = importlib.util.cache_from_source(path)
        if os.path.exists(pyc):
            target = os.path.join(partial, os.path.relpath(pyc, prefix))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            try:
                os.link(pyc, target)
            except OSError:
                shutil.copyfile(pyc, target)
    try:
        os.rename(partial, cached)
    except OSError:  # another build kept the same package first
        shutil.rmtree(partial, ignore_errors=True)


def main(prefix, wanted):
    sources = _sources(prefix, wanted)
    paths = [path for sha256 in wanted for path in sources.get(sha256, ())]
    if paths:
        try:
            import concurrent.futures

            with concurrent.futures.ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
                list(pool.map(_compile, paths))  # one by one: a few big modules would unbalance chunks
        except (ImportError, NotImplementedError, OSError, RuntimeError):
            # no working multiprocessing here (or a broken pool): one by one
            for path in paths:
                _compile(path)
    for sha256, cached in wanted.items():
        _keep(prefix, sources.get(sha256, ()), cached)


if __name__ == "__main__":
    plan = json.load(sys.stdin)
    main(plan["prefix"], plan["packages"])
