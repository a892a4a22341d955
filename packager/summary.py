"""What a bundle and an environment look like to a person: the signature line, and the HTML summary
Jupyter shows (core/summary.py draws it)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from satchel.core.summary import Content, Html, card, code, escape, items, shorten

if TYPE_CHECKING:
    from satchel.packager.bundle import Bundle
    from satchel.packager.environment import Environment
    from satchel.packager.resolvers.base import Lock


def signature_text(doc: Mapping[str, Any]) -> str:
    """`name(param: type = default, ...) -> type`, the defaults as Python literals of their JSON form."""
    fields = doc.get("interface", {}).get("request", {}).get("fields", [])
    defaults = {f["name"]: f["default"] for f in fields if isinstance(f, dict) and "default" in f}
    parts = []
    for p in doc["function"]["parameters"]:
        text = p["name"]
        if p.get("annotation"):
            text += f": {p['annotation']}"
        if p.get("default"):
            text += f" = {defaults[p['name']]!r}" if p["name"] in defaults else " = …"
        parts.append(text)
    ret = doc["function"].get("return_annotation")
    return f"{doc['name']}({', '.join(parts)})" + (f" -> {ret}" if ret else "")


def example_call(doc: Mapping[str, Any], example: Mapping[str, Any]) -> str:
    """`name(n=1200000, suffix='!')`: an example's arguments (their JSON form) as a call, in the order
    of the parameters."""
    order = [p["name"] for p in doc["function"]["parameters"]]
    names = sorted(example, key=lambda k: order.index(k) if k in order else len(order))
    return f"{doc['name']}({', '.join(f'{k}={example[k]!r}' for k in names)})"


def _package(pkg: Mapping[str, Any], conda: bool) -> str:
    manager = f" ({pkg.get('manager', 'pip')})" if conda else ""
    return f"{pkg.get('name', '?')} {pkg.get('version', '?')}{manager}"


def environment_rows(env: Mapping[str, Any]) -> list[tuple[str, Content]]:
    """The rows of a bundle's resolved environment (its document's `environment`)."""
    conda = env.get("resolver") == "rattler"
    requested = env.get("requested") or {}
    asked = [*(f"conda {s}" for s in requested.get("conda", [])), *requested.get("pypi", [])]
    if requested.get("base"):
        asked.insert(0, f"extends {str(requested['base'])[:12]}")
    packages = [_package(p, conda) for p in env.get("packages", []) if isinstance(p, Mapping)]
    return [
        (
            "environment",
            Html(
                f"{code(env.get('id', '?'))} python {escape(env.get('python', '?'))} "
                f"{escape(env.get('platform', '?'))} ({escape(env.get('resolver', '?'))})"
            ),
        ),
        ("requested", ", ".join(asked) or "(nothing)"),
        ("channels", ", ".join(env["channels"]) if env.get("channels") else None),
        ("packages", items(packages, what="packages")),
    ]


def provenance_text(prov: Mapping[str, Any]) -> str:
    return (
        f"{prov.get('created', '?')} by {prov.get('user', '?')}@{prov.get('host', '?')} "
        f"(python {prov.get('python', '?')}, satchel {prov.get('satchel_version', '?')})"
    )


def bundle_rows(bundle: Bundle) -> list[tuple[str, Content]]:
    doc = bundle.doc
    example = bundle.example
    artifacts = [
        f"{a.get('name')}: {a.get('python_type') or a.get('serializer', '')}" for a in bundle.artifacts
    ]
    return [
        ("signature", code(signature_text(doc))),
        ("example", code(example_call(doc, example)) if example else None),
        ("reference", code(bundle.ref) if bundle.ref is not None else None),
        ("version", str(bundle.version)),
        ("bound", ", ".join(doc["function"].get("bound", [])) or None),
        ("artifacts", items(artifacts, what="artifacts") if artifacts else None),
        *environment_rows(doc["environment"]),
        ("portable", None if doc["interface"].get("portable", True) else "no (Python-only pickled values)"),
        ("exported", provenance_text(bundle.provenance)),
    ]


def bundle_html(
    bundle: Bundle, rows: Iterable[tuple[str, Content]] = (), *, kind: str = "satchel bundle"
) -> Html:
    """A bundle's summary: its signature, docstring, example, environment and packages, provenance;
    then `rows` (a loaded function's workers)."""
    return card(
        kind, f"{bundle.name}:{bundle.version}", [*bundle_rows(bundle), *rows], doc=bundle.function.get("doc")
    )


# --- a requested environment ---------------------------------------------------------------------------


def _listed(values: tuple[str, ...], limit: int = 3) -> str:
    shown = ", ".join(values[:limit])
    return shown + (f" (+{len(values) - limit} more)" if len(values) > limit else "")


def lock_text(lock: Lock) -> str:
    return f"{lock.env_id[:12]}… ({len(lock.packages)} packages, python {lock.python}, {lock.resolver})"


def environment_repr(env: Environment) -> str:
    """One line: the fields that are not their defaults, long lists cut."""
    parts = [f"python={env.python!r}"]
    for name in ("pypi", "conda", "channels", "virtual_packages"):
        value = getattr(env, name)
        if value:
            parts.append(f"{name}=[{_listed(value)}]")
    if env.platform:
        parts.append(f"platform={env.platform!r}")
    if env.base is not None:
        parts.append(f"base={lock_text(env.base)}")
    return f"Environment({', '.join(parts)})"


def environment_html(env: Environment) -> Html:
    kind = "conda" if env.is_conda else "virtual environment"
    base_packages = None
    if env.base is not None:
        conda = env.base.is_conda
        base_packages = items(
            [_package(p.to_dict(), conda) for p in env.base.packages], what="packages of the base"
        )
    rows: list[tuple[str, Content]] = [
        ("python", env.python),
        ("pypi", items(list(env.pypi), what="requirements") if env.pypi else None),
        ("conda", items(list(env.conda), what="packages") if env.conda else None),
        ("channels", ", ".join(env.channels) or None),
        ("platform", env.platform),
        ("virtual packages", ", ".join(env.virtual_packages) or None),
        ("base", lock_text(env.base) if env.base is not None else None),
        ("base packages", base_packages),
    ]
    if not env.pypi and not env.conda and env.base is None:
        rows.insert(1, ("packages", "(none asked: the worker's own only)"))
    return card("satchel environment", kind, rows)


def json_text(value: Any, limit: int = 200) -> str:
    """A JSON value on one line, cut at `limit` characters."""
    return shorten(json.dumps(value, sort_keys=True), limit)
