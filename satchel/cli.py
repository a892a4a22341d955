"""The `satchel` command: a thin layer over the same functions Python users call."""

from __future__ import annotations

import datetime as _dt
import importlib
import json
import os
import pickle
import sys
from pathlib import Path
from typing import Any

import click

from satchel.core import settings
from satchel.core.errors import SatchelError
from satchel.packager.summary import json_text, signature_text


class _Group(click.Group):
    """Turns Satchel's own errors into one short red line and exit status 1 (tracebacks with --debug)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (SatchelError, ValueError, FileNotFoundError) as exc:
            if settings.debug():
                raise
            click.secho(f"error: {exc}", fg="red", err=True)
            ctx.exit(1)


def _out(text: str) -> None:
    click.echo(text)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="satchel")
def main() -> None:
    """Pack functions with their artifacts and environments; call them anywhere.

    Set SATCHEL_STORE for the default store and SATCHEL_HOME for local caches;
    SATCHEL_DEBUG=1 shows tracebacks.
    """


# -- export -------------------------------------------------------------------------------------------


def _import_target(target: str):
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise click.BadParameter(
            f"{target!r}: expected MODULE:FUNCTION, e.g. textutil:describe", param_hint="TARGET"
        )
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    if module_name.endswith(".py") or "/" in module_name:
        path = Path(module_name).resolve()
        if not path.is_file():
            raise click.BadParameter(f"file {module_name} not found", param_hint="TARGET")
        sys.path.insert(0, str(path.parent))
        module_name = path.stem
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise click.BadParameter(
            f"cannot import module {module_name!r}: {exc}", param_hint="TARGET"
        ) from None
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise click.BadParameter(
                f"module {module_name!r} has no attribute {attr!r}", param_hint="TARGET"
            ) from None
    return obj


@main.command()
@click.argument("target", metavar="MODULE:FUNCTION")
@click.option("--name", "-n", help="Bundle name (default: the function's name).")
@click.option("--store", "-s", help="Store URL or directory (default: $SATCHEL_STORE).")
@click.option(
    "--bind-pickle",
    multiple=True,
    metavar="NAME=PATH",
    help="Bind parameter NAME to the value pickled in PATH (repeatable).",
)
def export(target: str, name: str | None, store: str | None, bind_pickle: tuple[str, ...]) -> None:
    """Export a function as a bundle; prints its reference."""
    from satchel.packager.function import Function, function

    fn = _import_target(target)
    if not isinstance(fn, Function):
        if not callable(fn):
            raise click.BadParameter(f"{target} is not a function", param_hint="TARGET")
        fn = function(fn)
    values = {}
    for item in bind_pickle:
        key, sep, path = item.partition("=")
        if not sep or not key or not path:
            raise click.BadParameter(f"{item!r}: expected NAME=PATH", param_hint="--bind-pickle")
        try:
            with open(path, "rb") as fh:
                values[key] = pickle.load(fh)
        except FileNotFoundError:
            raise click.BadParameter(f"file {path} not found", param_hint="--bind-pickle") from None
        except Exception as exc:
            raise click.BadParameter(f"cannot unpickle {path}: {exc}", param_hint="--bind-pickle") from None
    if values:
        try:
            fn = fn.bind(**values)
        except TypeError as exc:
            raise click.BadParameter(str(exc), param_hint="--bind-pickle") from None
    ref = fn.export(name=name, store=store, progress=True)
    _out(str(ref))


# -- call ---------------------------------------------------------------------------------------------


@main.command()
@click.argument("ref")
@click.option(
    "--args", "-a", "args_json", default="{}", help="Arguments as a JSON object, by parameter name."
)
@click.option("--timeout", type=float, help="Seconds to wait for the result.")
def call(ref: str, args_json: str, timeout: float | None) -> None:
    """Call a bundle's function once; prints the JSON result."""
    from satchel.bindings.arguments import JsonArguments
    from satchel.bindings.jsonform import value_to_json
    from satchel.runtime.load import load

    try:
        args = json.loads(args_json)
    except ValueError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint="--args") from None
    with load(ref, progress=True) as fn:
        kwargs = JsonArguments(fn.schema["request"]).parse(args)  # worded as Python and REST word it
        if timeout is not None:
            kwargs["timeout"] = timeout
        result = fn(**kwargs)
        _out(json.dumps(value_to_json(result, fn.schema["response"])))


# -- inspect / verify / ls ------------------------------------------------------------------------------


def _console():
    """A console for people: no markup or highlighting in what it prints; whole lines (no wrapping)
    when stdout is not a terminal, so scripts read tables and references intact."""
    from rich.console import Console

    if sys.stdout.isatty():
        return Console(highlight=False, markup=False)
    return Console(highlight=False, markup=False, width=100_000, no_color=True)


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _print_code(store, doc: dict) -> None:
    """Each file of the code package (fetched and verified), under a `# path` line; the function's
    module first."""
    import tempfile
    import zipfile

    with tempfile.TemporaryDirectory(prefix="satchel-inspect-") as tmp:
        archive = store.fetch_blob(doc["code"]["blob"], Path(tmp) / "code.zip", what="code package")
        with zipfile.ZipFile(archive) as zf:
            names = sorted(zf.namelist())
            first = doc["function"]["module"].replace(".", "/")
            names.sort(key=lambda n: n not in (f"{first}.py", f"{first}/__init__.py"))
            for i, name in enumerate(names):
                text = zf.read(name).decode("utf-8", errors="replace")
                _out(("\n" if i else "") + f"# {name}\n" + text.rstrip("\n"))


@main.command(name="inspect")
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True, help="Print the whole metadata document as JSON.")
@click.option("--code", "show_code", is_flag=True, help="Print the source files of its code package.")
def inspect_cmd(ref: str, as_json: bool, show_code: bool) -> None:
    """Show what a bundle holds: signature, environment, artifacts, provenance."""
    from rich.table import Table
    from rich.text import Text

    from satchel.packager.bundle import read_bundle

    bundle, store = read_bundle(ref)
    doc = bundle.doc
    if as_json:
        _out(json.dumps(doc, indent=2, sort_keys=True))
        return
    if show_code:
        _print_code(store, doc)
        return
    con = _console()

    def line(text: str) -> None:
        con.print(text, soft_wrap=True)  # a long reference stays one string, however narrow the terminal

    con.print(Text(signature_text(doc), style="bold"), soft_wrap=True)
    line(f"  reference   {bundle.ref}")
    if doc["function"].get("doc"):
        line(f"  doc         {doc['function']['doc'].splitlines()[0]}")
    if bundle.example is not None:
        line(f"  example     {json_text(bundle.example)}")
    portable = doc["interface"].get("portable", True)
    line(f"  portable    {'yes' if portable else 'no (Python-only pickled values)'}")
    if doc["function"].get("bound"):
        line(f"  bound       {', '.join(doc['function']['bound'])}")
    env = doc["environment"]
    line(f"  environment {env['id']}  python {env['python']}  {env['platform']}  ({env['resolver']})")
    requested = env["requested"]
    asked = [*(f"conda {s}" for s in requested.get("conda", [])), *requested.get("pypi", [])]
    if requested.get("base"):
        asked.insert(0, f"extends {requested['base'][:12]}")
    line(f"  requested   {', '.join(asked) or '(nothing)'}")
    if env.get("channels"):
        line(f"  channels    {', '.join(env['channels'])}  ({env.get('subdir')})")
    runtime = {
        r.split(">")[0].split("=")[0].split("<")[0].strip().lower()
        for r in env.get("runtime_requirements", [])
    }
    table = Table(show_edge=False, box=None, pad_edge=False)
    conda = env.get("resolver") == "rattler"
    for col in ("package", "version", *(["from"] if conda else []), "size", "sha256", ""):
        table.add_column(col)
    for pkg in env["packages"]:
        mark = "runtime requirement" if pkg["name"].lower() in runtime else ""
        source = [pkg.get("manager", "pip")] if conda else []
        table.add_row(pkg["name"], pkg["version"], *source, _size(pkg.get("size")), pkg["sha256"][:16], mark)
    con.print(table)
    if bundle.artifacts:
        arts = Table(show_edge=False, box=None)
        for col in ("artifact", "type", "size", "sha256"):
            arts.add_column(col)
        for art in bundle.artifacts:
            arts.add_row(art["name"], art.get("python_type", ""), _size(art.get("size")), art["blob"][:16])
        con.print(arts)
    prov = doc.get("provenance", {})
    line(
        f"  exported    {prov.get('created', '?')} by {prov.get('user', '?')}@{prov.get('host', '?')} "
        f"(python {prov.get('python', '?')}, satchel {prov.get('satchel_version', '?')})"
    )


@main.command()
@click.argument("ref")
def verify(ref: str) -> None:
    """Re-read every blob of a bundle from its store and check its sha256 (exit 1 on any failure)."""
    import tempfile

    from satchel.core.errors import BlobCorrupted, BlobNotFound
    from satchel.packager.bundle import read_bundle

    bundle, store = read_bundle(ref)
    failures = 0
    with tempfile.TemporaryDirectory(prefix="satchel-verify-") as tmp:
        for blob in bundle.blobs():
            # The same verified read a load does (Store.fetch_blob), into a scratch file.
            scratch = Path(tmp) / blob.digest
            try:
                store.fetch_blob(blob.digest, scratch, what=blob.what)
                ok, status = True, "ok"
            except BlobNotFound:
                ok, status = False, "MISSING"
            except BlobCorrupted as exc:
                ok, status = False, f"CORRUPT (hashes to {(exc.actual or '?')[:16]}…)"
            finally:
                scratch.unlink(missing_ok=True)
            failures += not ok
            click.secho(
                f"{'✓' if ok else '✗'} {blob.what:<48} {blob.digest[:16]}  {status}", fg=None if ok else "red"
            )
    if failures:
        click.secho(f"{failures} blob(s) of {bundle.ref} failed verification", fg="red", err=True)
        sys.exit(1)
    _out(f"all blobs of {bundle.ref} verified")


@main.command(name="ls")
@click.option("--store", "-s", help="Store URL or directory (default: $SATCHEL_STORE).")
def ls_cmd(store: str | None) -> None:
    """List the bundles in a store (a document that cannot be read is skipped, with a warning)."""
    from rich.table import Table

    from satchel.packager.bundle import list_bundles
    from satchel.packager.stores import open_store

    target = open_store(store)
    listing = list_bundles(target)
    for where, why in listing.skipped:
        click.secho(f"warning: skipped {where}: {why}", fg="yellow", err=True)
    if not listing.bundles:
        _out(f"no bundles in {target.url}")
        return
    table = Table(title=target.url, show_edge=False)
    for col in ("name", "latest", "versions", "signature", "exported"):
        table.add_column(col)
    for name, versions, bundle in listing.bundles:
        table.add_row(
            name,
            str(bundle.ref.version),
            str(len(versions)),
            signature_text(bundle.doc),
            str(bundle.provenance.get("created", "")),
        )
    _console().print(table)


# -- env ----------------------------------------------------------------------------------------------


@main.group()
def env() -> None:
    """Named environments in a store (resolve, tag, ls, show, export), and the local cache (cache)."""


def _named(store: str | None):
    from satchel.packager.named_environments import NamedEnvironments

    return NamedEnvironments(store)


def _tags_text(tags: dict[str, int]) -> str:
    return " ".join(f"{tag}={version}" for tag, version in sorted(tags.items()))


@env.command(name="resolve", short_help="Resolve FILE; with --name, publish it.")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--name", "-n", help="Publish it as the next version of NAME (e.g. ml/sklearn) and tag it latest."
)
@click.option("--store", "-s", help="Store URL or directory (default: $SATCHEL_STORE).")
@click.option("--python", "python", metavar="X.Y", help="Python version (default: this interpreter's).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def env_resolve(file: str, name: str | None, store: str | None, python: str | None, as_json: bool) -> None:
    """Resolve FILE (environment.yml, or a requirements file); print its resolved id.

    Without --name nothing is written: a request the store already resolved is reused, else solved.
    With --name every package file is mirrored into the store and the lock published as NAME's next
    version (versions never change; the tag latest moves to it).
    """
    from satchel.core import progress as _progress
    from satchel.packager.environment import Environment
    from satchel.packager.export import WORKER_REQUIREMENTS
    from satchel.packager.locking import lock_environment
    from satchel.packager.named_environments import check_name

    if name is not None:
        check_name(name)  # before any slow work
    if not Path(file).is_file():
        raise FileNotFoundError(f"environment file not found: {file}")
    named = _named(store)
    with _progress.reporting(_progress.reporter_for(None)):
        environment = Environment.from_file(file, python=python)
        lock = lock_environment(environment, WORKER_REQUIREMENTS, store=named.store)
        version = named.publish(name, lock) if name is not None else None
    n = len(lock.packages)
    result = {"env_id": lock.env_id, "packages": n, "python": lock.python, "resolver": lock.resolver}
    if name is not None:
        latest = named.tag_of(name, "latest").version  # a newer version published meanwhile keeps it
        result.update(name=name, version=version, latest=latest)
    if as_json:
        _out(json.dumps(result))
        return
    _out(f"resolved {lock.env_id} ({n} package{'s' * (n != 1)}, python {lock.python}, {lock.resolver})")
    if name is not None:
        moved = " (tag latest)" if result["latest"] == version else f" (latest is {result['latest']})"
        _out(f"published {name}:{version}{moved}")


@env.command(name="tag", short_help="Move a tag onto a version.")
@click.argument("target", metavar="NAME:VERSION")
@click.argument("tag")
@click.option("--store", "-s", help="Store URL or directory (default: $SATCHEL_STORE).")
def env_tag(target: str, tag: str, store: str | None) -> None:
    """Move TAG (stable, candidate, ...) of a named environment onto VERSION (a number or a tag).

    Tags move; versions never do.
    """
    name, sep, version = target.rpartition(":")
    if not sep or not name or not version:
        raise click.BadParameter(
            f"{target!r}: expected NAME:VERSION, e.g. ml/sklearn:3", param_hint="NAME:VERSION"
        )
    moved = _named(store).tag(name, version, tag)
    _out(f"{name}:{tag} -> {moved}")


@env.command(name="ls", short_help="Names, versions and tags in a store.")
@click.option("--store", "-s", help="Store URL or directory (default: $SATCHEL_STORE).")
@click.option("--json", "as_json", is_flag=True, help="Print the names, versions and tags as JSON.")
def env_ls(store: str | None, as_json: bool) -> None:
    """List the named environments in a store, with their versions and tags."""
    from rich.table import Table

    named = _named(store)
    listing = named.list()
    for where, why in listing.skipped:
        click.secho(f"warning: skipped {where}: {why}", fg="yellow", err=True)
    if as_json:
        rows = [{"name": e.name, "versions": e.versions, "tags": e.tags} for e in listing.environments]
        _out(json.dumps(rows))
        return
    if not listing.environments:
        _out(f"no named environments in {named.store.url}")
        return
    table = Table(title=named.store.url, show_edge=False)
    for col in ("name", "newest", "versions", "tags"):
        table.add_column(col)
    for entry in listing.environments:
        newest = str(entry.versions[-1]) if entry.versions else "-"
        table.add_row(entry.name, newest, str(len(entry.versions)), _tags_text(entry.tags))
    _console().print(table)


@env.command(name="show", short_help="A named environment: versions, tags, packages.")
@click.argument("spec", metavar="NAME[:TAG|:VERSION]")
@click.option("--store", "-s", help="Store URL or directory (default: $SATCHEL_STORE).")
@click.option("--json", "as_json", is_flag=True, help="Print it as JSON.")
def env_show(spec: str, store: str | None, as_json: bool) -> None:
    """Show a named environment: its versions and tags, and every package of one version (default
    latest): name, version, manager, file."""
    from rich.table import Table

    from satchel.packager.named_environments import parse_spec

    named = _named(store)
    name, _ = parse_spec(spec)
    details = named.show(name)
    chosen = named.get(spec)
    for where, why in details.skipped:
        click.secho(f"warning: skipped {where}: {why}", fg="yellow", err=True)
    packages = [
        {"name": p.name, "version": p.version, "manager": p.manager, "filename": p.filename}
        for p in chosen.lock.packages
    ]
    if as_json:
        _out(json.dumps({**details.to_dict(), "version": chosen.version, "packages": packages}))
        return
    con = _console()
    lock = chosen.lock
    tags = [t for t, tag in details.tags.items() if tag.version == chosen.version]
    tagged = f"  (tag {', '.join(tags)})" if tags else ""
    platform = lock.subdir or lock.platform
    con.print(
        f"{name}:{chosen.version}  {lock.env_id}  python {lock.python}  {lock.resolver}  {platform}{tagged}"
    )
    con.print(f"  published {chosen.created} by {chosen.by}")
    versions = Table(show_edge=False, box=None, pad_edge=False)
    columns = ("version", "env_id", "python", "resolver", "packages", "created", "by")
    for col in (*columns, "tags"):
        versions.add_column(col)
    for v in details.versions:
        summary = v.summary()
        on = ",".join(t for t, tag in details.tags.items() if tag.version == v.version)
        versions.add_row(*(str(summary[c]) for c in columns), on)
    con.print(versions)
    table = Table(show_edge=False, box=None, pad_edge=False)
    for col in ("package", "version", "manager", "file"):
        table.add_column(col)
    for p in packages:
        table.add_row(p["name"], p["version"], p["manager"], p["filename"])
    con.print(table)


EXPORT_FORMATS = ("conda-lock", "requirements", "environment.yml")


def _lock_of_ref(ref: str, store: str | None):
    """The lock a named environment ("ml/sklearn:stable") or a bundle ("[STORE#]name:3") pins."""
    from satchel.core.errors import BundleNotFound, EnvironmentNotFound
    from satchel.packager.bundle import list_names, read_bundle
    from satchel.packager.named_environments import parse_spec

    where, sep, tail = ref.rpartition("#")
    target = where if sep else store
    named = _named(target)
    try:
        parse_spec(tail)
    except ValueError:
        is_named = False
    else:
        is_named = True
        try:
            return named.lock(tail)
        except EnvironmentNotFound:
            if "/" in tail.partition(":")[0]:  # only an environment's name has parts: not a bundle
                raise
    try:
        bundle, _ = read_bundle(f"{named.store.url}#{tail}")
    except BundleNotFound as exc:
        if not is_named:
            raise
        raise BundleNotFound(
            f"no bundle or named environment {tail!r} in {named.store.url} "
            f"({_there('bundles', list_names(named.store))}; {_there('named environments', named.names())})"
        ) from exc
    return bundle.lock


def _there(what: str, names: list[str]) -> str:
    return f"{what} there: {', '.join(names[:10])}" if names else f"no {what} there"


@env.command(name="export", short_help="Write a lock: conda-lock, requirements, environment.yml.")
@click.argument("ref", metavar="REF")
@click.option("--format", "fmt", type=click.Choice(EXPORT_FORMATS), required=True, help="What to write.")
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write to this file (default: stdout).")
@click.option("--store", "-s", help="Store URL or directory (default: $SATCHEL_STORE).")
def env_export(ref: str, fmt: str, output: str | None, store: str | None) -> None:
    """Write the locked environment of REF (a named environment, NAME[:TAG|:VERSION], or a bundle,
    [STORE#]NAME[:VERSION]) as a conda-lock file, a requirements file or an environment.yml."""
    lock = _lock_of_ref(ref, store)
    from satchel.packager.environment_files import export_lock

    text = export_lock(lock, fmt)
    if output is None:
        click.echo(text, nl=not text.endswith("\n"))
        return
    Path(output).write_text(text)
    _out(f"wrote {output}")


@env.group(name="cache")
def env_cache() -> None:
    """Materialized environments in the local cache (SATCHEL_HOME)."""


@env_cache.command(name="ls")
def env_cache_ls() -> None:
    """List materialized environments."""
    from rich.console import Console
    from rich.table import Table

    from satchel.runtime.environments import EnvironmentCache

    cache = EnvironmentCache()
    infos = cache.list()
    if not infos:
        _out(f"no environments in {cache.root}")
        return
    table = Table(show_edge=False)
    for col in ("environment", "python", "size", "created", "last used"):
        table.add_column(col)
    for info in infos:
        table.add_row(
            info.env_id, info.python, _size(info.size), _fmt_time(info.created), _fmt_time(info.last_used)
        )
    Console(highlight=False, width=200).print(table)


def _fmt_time(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (int, float)):
        value = _dt.datetime.fromtimestamp(value, _dt.timezone.utc)
    if isinstance(value, _dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return str(value)


@env_cache.command(name="prune")
@click.option("--older-than", type=float, metavar="DAYS", help="Remove environments unused for DAYS days.")
@click.option("--all", "prune_all", is_flag=True, help="Remove every environment.")
def env_cache_prune(older_than: float | None, prune_all: bool) -> None:
    """Remove materialized environments (they are rebuilt from the store when needed)."""
    from satchel.runtime.environments import EnvironmentCache

    if older_than is None and not prune_all:
        raise click.UsageError("say what to remove: --older-than DAYS or --all")
    age = _dt.timedelta(0) if prune_all else _dt.timedelta(days=older_than)
    removed = EnvironmentCache().prune(older_than=age)
    _out(f"removed {len(removed)} environment(s)" + (": " + ", ".join(removed) if removed else ""))


# -- rm / gc ------------------------------------------------------------------------------------------


@main.command(name="rm")
@click.argument("ref", metavar="[STORE#]NAME[:VERSION]")
@click.option("--store", "-s", help="Store URL or directory (default: $SATCHEL_STORE).")
@click.option("--force", is_flag=True, help="Remove it even if a deployment names it.")
def rm_cmd(ref: str, store: str | None, force: bool) -> None:
    """Remove a bundle version (every version, given only NAME).

    Its blobs go with the next `satchel gc` once nothing else names them and the grace period has
    passed; its version number is never given again.
    """
    from satchel.packager.gc import remove
    from satchel.packager.refs import BundleRef
    from satchel.packager.stores import open_store

    parsed = BundleRef.parse(ref, default_store=store)
    if parsed.version is None and ":" in ref.rpartition("#")[2]:
        raise click.BadParameter(
            f"{ref!r}: name a version number, or only NAME for every version", param_hint="REF"
        )
    target = open_store(parsed.store)
    removed = remove(target, parsed.name, parsed.version, force=force)
    for version in removed:
        _out(f"removed {parsed.name}:{version}")


@main.command(name="gc")
@click.option("--store", "-s", help="Store URL or directory (default: $SATCHEL_STORE).")
@click.option(
    "--grace",
    default="1h",
    show_default=True,
    help="Keep unreferenced blobs younger than this (30m, 1h, 2d): covers exports and loads in flight.",
)
@click.option("--dry-run", is_flag=True, help="Only say what would be deleted.")
def gc_cmd(store: str | None, grace: str, dry_run: bool) -> None:
    """Delete the blobs no bundle, flow run or deployment in the store names any more."""
    from satchel.flows.gc import format_bytes, parse_age
    from satchel.packager.gc import gc
    from satchel.packager.stores import open_store

    target = open_store(store)
    summary = gc(target, grace=parse_age(grace, "--grace"), dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    n = len(summary.blobs_deleted)
    line = f"{verb} {n} blob{'s' * (n != 1)}, {format_bytes(summary.bytes_freed)} from {target.url}"
    line += f"; {summary.blobs_referenced} referenced"
    if summary.blobs_kept_recent:
        line += f", {summary.blobs_kept_recent} unreferenced but younger than --grace {grace} (left for a later gc)"
    if summary.stale_intents:
        line += f"; {len(summary.stale_intents)} record(s) of dead exports {'to remove' if dry_run else 'removed'}"
    _out(line)
    for digest in summary.blobs_deleted if dry_run else ():
        _out(f"  sha256:{digest}")


# -- doctor -------------------------------------------------------------------------------------------


@main.command()
@click.option("--clean", is_flag=True, help="Remove shared-memory segments whose processes are all gone.")
def doctor(clean: bool) -> None:
    """Check the shared-memory transport; list (and with --clean remove) leftover ring segments."""
    from satchel.bindings import _native
    from satchel.bindings.ring import SHM_DIR, clean_segments, list_segments
    from satchel.bindings.transports import default_transport

    reason = _native.unavailable_reason()
    if reason is None:
        _out(f"ring library   {_native.load().path}")
    else:
        _out(f"ring library   unavailable: {reason}")
    _out(f"transport      {default_transport()} (default)")
    if reason is None:
        _ring_self_test()
    segments = list_segments()
    if not segments:
        _out(f"segments       none in {SHM_DIR}")
    for seg in segments:
        who = f"creator {seg.creator_pid or '?'}, attacher {seg.attacher_pid or '-'}"
        state = "orphaned" if seg.orphaned else "in use"
        _out(f"segment        {seg.name}  {_size(seg.size)}  {who}  {state}")
    if clean:
        removed = clean_segments()
        _out(f"removed {len(removed)} orphaned segment(s)" + "".join(f"\n  {s.name}" for s in removed))
    elif any(seg.orphaned for seg in segments):
        _out("run `satchel doctor --clean` to remove the orphaned segments")


def _ring_self_test(count: int = 2000) -> None:
    """Round trips with an echo process over a real ring: how waits behave on this machine, and why."""
    from satchel.bindings import ring_probe

    try:
        probe = ring_probe.round_trips(count)
    except Exception as exc:  # noqa: BLE001 - the report says what failed; doctor goes on
        _out(f"ring self-test failed: {type(exc).__name__}: {exc}")
        return
    load = os.getloadavg()[0]
    _out(
        f"ring waits     {ring_probe.describe_tuning(probe['tuning'])}; {os.cpu_count()} CPUs, load {load:.2f}"
    )
    _out(
        f"ring self-test {count} round trips of 64 B: p50 {probe['p50_us']:.1f} µs, p99 {probe['p99_us']:.1f} µs"
    )
    _out(f"  this end     {ring_probe.describe_stats(probe['caller'])}")
    if probe["peer"] is not None:
        _out(f"  echo peer    {ring_probe.describe_stats(probe['peer'])}")


def _register_extensions() -> None:
    from satchel.flows.runs_cli import runs_group
    from satchel.serving.cli import serve_command
    from satchel.serving.deploy.cli import deploy_command, deployments_group

    main.add_command(serve_command)
    main.add_command(deploy_command)
    main.add_command(deployments_group)
    main.add_command(runs_group)


_register_extensions()

if __name__ == "__main__":  # pragma: no cover
    main()
