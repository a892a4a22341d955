"""Export: schemas, code, artifacts and a locked, mirrored environment -> one bundle in a store."""

from __future__ import annotations

import contextlib
import datetime as _dt
import getpass
import hashlib
import inspect
import json
import os
import pickle
import platform
import socket
import types
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from satchel.bindings import arguments, convert
from satchel.bindings.fingerprint import fingerprint_hex
from satchel.bindings.jsonform import JsonForm
from satchel.bindings.schema import Param, is_portable, named_types, request_schema, response_schema
from satchel.core import progress as _progress
from satchel.core.errors import ArgumentError, SatchelError
from satchel.core.progress import Reporter, stage
from satchel.core.version import __version__
from satchel.packager import code as code_capture
from satchel.packager import session_code
from satchel.packager.bundle import FORMAT_VERSION, FORMAT_VERSION_TASKS, KIND, TASK_MANIFEST_MAGIC, publish
from satchel.packager.gc import ExportJournal, keep_blob
from satchel.packager.locking import lock_environment, mirror, record_lock
from satchel.packager.refs import BundleRef, check_name
from satchel.packager.scratch import scratch_dir
from satchel.packager.stores import Store, open_store
from satchel.packager.stores.base import sha256_file

if TYPE_CHECKING:
    from satchel.packager.function import Function
    from satchel.packager.task_binding import TaskBinding

SCRATCH_PREFIX = "satchel-export-"
# What Satchel's worker needs inside every environment (it speaks Avro with fastavro).
WORKER_REQUIREMENTS = ("fastavro>=1.9",)
# Extra packages a logical type needs in the worker, when the interface uses it.
_LOGICAL_REQUIREMENTS = {"satchel.ndarray": ("numpy",), "satchel.arrow": ("pyarrow",)}


def interface_of(fn: Function) -> dict[str, Any]:
    """The Avro interface of a Function (bound parameters excluded)."""
    hints = fn.type_hints()
    _reject_variadic(fn)
    params = [
        Param(
            name=p.name, annotation=hints.get(p.name, inspect.Parameter.empty), default=p.default, kind=p.kind
        )
        for p in fn.signature.parameters.values()
    ]
    request = request_schema(fn.name, params, allow_pickle=fn.allow_pickle)
    if "return" not in hints:
        from satchel.core.errors import SchemaError

        raise SchemaError(
            f"the return value of {fn.name!r} is not annotated: annotate it (use '-> None' if it returns nothing)"
        )
    response = response_schema(fn.name, hints["return"], allow_pickle=fn.allow_pickle)
    return {
        "request": request,
        "response": response,
        "request_fingerprint": fingerprint_hex(request),
        "response_fingerprint": fingerprint_hex(response),
        "portable": is_portable(request) and is_portable(response),
    }


def example_of(fn: Function, request: dict[str, Any]) -> dict[str, Any] | None:
    """`fn.example` checked against the request schema as a call's arguments are, in JSON form; an
    ArgumentError naming the parameter that does not fit (`.parameter`)."""
    example = fn.example
    if example is None:
        return None
    where = f"example= of {fn.name!r}"
    if not isinstance(example, Mapping) or not all(isinstance(k, str) for k in example):
        raise arguments.argument_error(
            f"{where} takes a dict of parameter name -> value, like a call's keyword arguments, "
            f"not {type(example).__name__}"
        )
    fields = {f["name"]: f for f in request["fields"]}
    unknown = [k for k in example if k not in fields]
    if unknown:
        exc = arguments.unknown(unknown, fields)
        bound = [k for k in unknown if k in fn.bound or k in fn.tasks]
        hint = f"; {', '.join(map(repr, bound))} bound, so not an argument" if bound else ""
        raise arguments.argument_error(f"{where}: {exc}{hint}", exc.parameter)
    missing = [name for name, f in fields.items() if name not in example and "default" not in f]
    if missing:
        exc = arguments.missing(missing)
        raise arguments.argument_error(f"{where}: {exc}", exc.parameter)
    named = named_types(request)
    out = {}
    for name, value in example.items():
        schema = fields[name]["type"]
        try:
            datum = convert.to_datum_converter(schema, path=arguments.path_of(name), named=named)(value)
        except ArgumentError as exc:
            raise arguments.argument_error(f"{where}: {exc}", name) from None
        out[name] = JsonForm(schema, named=named).datum_to_json(datum)
    return out


def _reject_variadic(fn: Function) -> None:
    from satchel.core.errors import SchemaError

    for p in fn.signature.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            star = "*" if p.kind is p.VAR_POSITIONAL else "**"
            raise SchemaError(
                f"parameter {star}{p.name} of {fn.name!r}: variadic parameters have no schema; "
                "declare each parameter explicitly"
            )


def _rename_main(interface: dict[str, Any], module: str, source: str = "__main__") -> dict[str, Any]:
    """The interface with the types of `source` (a script's or a session's module) named in `module`."""

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            out = {k: walk(v) for k, v in node.items()}
            if isinstance(out.get("python"), str) and out["python"].startswith(f"{source}:"):
                out["python"] = module + out["python"][len(source) :]
            return out
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    renamed = walk(interface)
    renamed["request_fingerprint"] = fingerprint_hex(renamed["request"])
    renamed["response_fingerprint"] = fingerprint_hex(renamed["response"])
    return renamed


def _main_types(interface: dict[str, Any], source: str = "__main__") -> set[str]:
    """The top-level names of the classes of `source` an interface names (`"python": "__main__:X"`)."""
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            python = node.get("python")
            if isinstance(python, str) and python.startswith(f"{source}:"):
                names.add(python[len(source) + 1 :].split(".")[0])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk([interface["request"], interface["response"]])
    return names


def runtime_requirements(interface: dict[str, Any]) -> list[str]:
    text = json.dumps([interface["request"], interface["response"]])
    reqs = list(WORKER_REQUIREMENTS)
    for logical, extra in _LOGICAL_REQUIREMENTS.items():
        if f'"{logical}"' in text:
            reqs.extend(extra)
    if '"pandas.DataFrame"' in text:
        reqs.append("pandas")
    return reqs


def _function_doc(fn: Function) -> dict[str, Any]:
    hints = fn.type_hints()
    hints_text = {}
    for p in fn.signature.parameters.values():
        entry: dict[str, Any] = {"name": p.name, "kind": p.kind.name.lower()}
        if p.name in hints:
            entry["annotation"] = inspect.formatannotation(hints[p.name])
        if p.default is not inspect.Parameter.empty:
            entry["default"] = True
        hints_text[p.name] = entry
    ret = hints.get("return", inspect.Signature.empty)
    return {
        "module": fn.func.__module__,
        "qualname": fn.func.__qualname__,
        "doc": inspect.getdoc(fn.func) or "",
        "parameters": list(hints_text.values()),
        "return_annotation": None if ret is inspect.Signature.empty else inspect.formatannotation(ret),
        "bound": sorted([*fn.bound, *fn.tasks]),
    }


def _provenance() -> dict[str, Any]:
    try:
        user = getpass.getuser()
    except Exception:  # no user name in some containers
        user = str(os.getuid())
    return {
        "satchel_version": __version__,
        "user": user,
        "host": socket.gethostname(),
        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


class _ScriptRecorder(pickle.Pickler):
    """Pickles as `pickle.dump` does, noting the top-level names of `__main__` it refers to."""

    def __init__(self, file: Any, names: set[str]) -> None:
        super().__init__(file, protocol=5)
        self.names = names

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, (type, types.FunctionType)) and getattr(obj, "__module__", None) == "__main__":
            self.names.add(obj.__qualname__.split(".")[0])
        return NotImplemented


def _pickle_artifact(name: str, value: Any, directory: Path, recording: set[str] | None = None) -> Path:
    """Pickle a bound value to a file; `recording` collects the script names it refers to."""
    path = directory / f"artifact-{name}.pkl"
    try:
        with open(path, "wb") as fh:
            if recording is None:
                pickle.dump(value, fh, protocol=5)
            else:
                _ScriptRecorder(fh, recording).dump(value)
    except Exception as exc:
        raise SatchelError(
            f"bound value {name!r} ({type(value).__module__}.{type(value).__qualname__}) cannot be "
            f"pickled: {type(exc).__name__}: {exc}"
        ) from None
    return path


def _task_artifacts(
    binding: TaskBinding, target: Store, journal: ExportJournal, directory: Path
) -> list[dict[str, Any]]:
    """Copy the chosen artifacts of a bound task into blobs (streaming, as plain pickles) and write its
    manifest; return their `artifacts` entries, the manifest's first."""
    param, task = binding.parameter, binding.task
    entries = []
    blob_names = {}
    for art in binding.artifacts:
        blob_name = f"{param}.data.{art}"
        path = directory / f"task-{param}-{art}.pkl"
        digest = hashlib.sha256()
        try:
            with task.open_artifact(art) as src, open(path, "wb") as out:
                while chunk := src.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
        except Exception as exc:
            raise SatchelError(
                f"artifact {art!r} of flow task {task.pathspec} could not be read: {type(exc).__name__}: {exc}"
            ) from exc
        blob = keep_blob(target, journal, path, digest.hexdigest())
        size = path.stat().st_size
        path.unlink()
        blob_names[art] = blob_name
        entries.append(
            {
                "name": blob_name,
                "blob": blob,
                "size": size,
                "serializer": "pickle-5",
                "task": param,
                "artifact": art,
            }
        )
    manifest = (
        TASK_MANIFEST_MAGIC
        + json.dumps(
            {"pathspec": task.pathspec, "artifacts": blob_names, "all_artifacts": list(binding.all_names)},
            sort_keys=True,
        ).encode()
    )
    manifest_path = directory / f"task-{param}.manifest"
    manifest_path.write_bytes(manifest)
    head = {
        "name": param,
        "blob": keep_blob(target, journal, manifest_path, hashlib.sha256(manifest).hexdigest()),
        "size": len(manifest),
        "serializer": "satchel-task-1",
        "python_type": "satchel.flows.Task",
        "pathspec": task.pathspec,
    }
    return [head, *entries]


def export(
    fn: Function, *, name: str, store: str | None = None, progress: bool | Reporter | None = True
) -> BundleRef:
    """`progress`: where its stages show (core/progress.py `reporter_for`: True is rich on stderr)."""
    check_name(name)
    # checked before anything is written, against the request as declared (a script's types not renamed)
    example = None if fn.example is None else example_of(fn, interface_of(fn)["request"])
    with _progress.reporting(_progress.reporter_for(progress)) as reporter:
        target = open_store(store)
        # Every blob is journalled, then touched or uploaded, before the document names it: a concurrent
        # `satchel gc` never collects it (packager/gc.py). The journal goes once the document is written.
        with contextlib.closing(ExportJournal(target)) as journal:
            ref = _export(fn, name, target, journal, example)
        reporter.note(f"exported {ref}")
    return ref


def _export(
    fn: Function, name: str, target: Store, journal: ExportJournal, example: dict[str, Any] | None = None
) -> BundleRef:
    with stage(f"interface of {name}", quiet=True):
        declared = interface = interface_of(fn)
        source = fn.func.__module__
        shipped_as_other = source == "__main__" or session_code.defined_in_session(fn.func)
        script_names = _main_types(interface, source)
        captured = code_capture.capture(fn.func, script_names=script_names)
        if shipped_as_other:  # a script or a session: its types live in the module it is shipped as
            interface = _rename_main(declared, captured.module, source)
    lock = lock_environment(fn.environment, runtime_requirements(interface), store=target)

    # Not a TemporaryDirectory: a killed export could not remove it (a pickle may be gigabytes);
    # a scratch directory left by a dead export is removed by the next one.
    with scratch_dir(SCRATCH_PREFIX) as tmpdir:
        mirror(lock, target, keep=journal.keep)
        record_lock(target, lock)
        n_task_artifacts = sum(len(b.artifacts) for b in fn.tasks.values())
        with stage(f"writing code and {len(fn.bound) + n_task_artifacts} artifacts"):
            artifacts = []
            referred: set[str] = set()  # classes and functions of a script the pickles refer to
            recording = referred if fn.func.__module__ == "__main__" else None
            for art_name, value in sorted(fn.bound.items()):
                path = _pickle_artifact(art_name, value, tmpdir, recording)
                digest = keep_blob(target, journal, path, sha256_file(path))
                artifacts.append(
                    {
                        "name": art_name,
                        "blob": digest,
                        "size": path.stat().st_size,
                        "serializer": "pickle-5",
                        "python_type": f"{type(value).__module__}.{type(value).__qualname__}",
                    }
                )
            for binding in fn.tasks.values():
                artifacts.extend(_task_artifacts(binding, target, journal, tmpdir))
            if referred - script_names:  # the worker unpickles them from the script's subset
                captured = code_capture.capture(fn.func, script_names=script_names | referred)
                if shipped_as_other:  # a session's module is named by its text, which has grown
                    interface = _rename_main(declared, captured.module, source)
            code_path = tmpdir / "code.zip"
            code_path.write_bytes(captured.data)
            code_digest = keep_blob(target, journal, code_path, hashlib.sha256(captured.data).hexdigest())

    environment = lock.to_dict()
    environment["id"] = environment.pop("env_id")
    doc = {
        "format_version": FORMAT_VERSION_TASKS if fn.tasks else FORMAT_VERSION,
        "kind": KIND,
        "name": name,
        "version": 0,
        "function": {
            **_function_doc(fn),
            "module": captured.module,
            "qualname": captured.qualname,
            "source_module": fn.func.__module__,
        },
        "interface": interface,
        "code": {"blob": code_digest, "size": len(captured.data), "modules": list(captured.files)},
        "artifacts": artifacts,
        "environment": environment,
        "provenance": _provenance(),
    }
    if example is not None:  # the example call given at export, in JSON form (docs/bundle-format.md)
        doc["interface"] = {**interface, "example": example}
    return publish(target, doc)
