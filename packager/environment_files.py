"""conda's files in and out: an `environment.yml` read into an `Environment`, and a `Lock` written for the
tools people already use (`export_lock`): conda-lock's unified lock file (version 1), a pip requirements
file with hashes, or an `environment.yml` with every package pinned.

Reading and writing YAML needs PyYAML, from the `conda` extra.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement

from satchel.core.errors import EnvironmentResolutionError
from satchel.core.extras import needs_extra
from satchel.packager.environment import DEFAULT_CHANNELS, Environment
from satchel.packager.resolvers.base import Lock, LockedPackage

FORMATS = ("conda-lock", "requirements", "environment.yml")
FEATURE = "conda environment files"
#: The keys of conda's environment.yml; `name` and `prefix` say where conda would put it: not Satchel's business.
_KEYS = ("name", "prefix", "channels", "dependencies")
# conda's "no default channels": Satchel never adds channels of its own, so it means nothing more here
_NODEFAULTS = "nodefaults"
# A pinned Python in a conda spec's version: "3.11.*" (python=3.11), "==3.11.7" (python==3.11.7, or =3.11.7=build)
_PINNED_PYTHON = re.compile(r"^(?:==)?(\d+)\.(\d+)(?:\.[0-9a-z.*]+)?$")
_DEPENDS_NAME = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$")
_ENV_VAR = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?")


def _yaml() -> Any:
    with needs_extra("conda", FEATURE):
        import yaml
    return yaml


# --- reading environment.yml -----------------------------------------------------------------------


def read_environment_yml(path: str | Path, python: str | None = None) -> Environment:
    """conda's `environment.yml` as an `Environment`: its `channels`, its `dependencies` (conda match
    specs: "numpy=2.1", "numpy==2.1.3", "scikit-learn>=1.5", "conda-forge::numpy") and their `pip:` list
    (requirement strings as pip takes them). `name` and `prefix` are ignored.

    The Python version is the file's `python` dependency when it pins one ("python=3.11"), else `python`,
    else this interpreter's. Every mistake in the file is one EnvironmentResolutionError naming the file
    (and the line) and what is wrong.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"environment file not found: {path}")
    data, root = _load(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise _error(path, root, f"expected a mapping with channels and dependencies, not a {_kind(data)}")
    for key in data:
        if key not in _KEYS:
            if key == "variables":
                why = "Satchel does not set environment variables for a function: remove `variables:`"
            else:
                why = f"known keys: {', '.join(_KEYS)}"
            raise _error(path, _key_node(root, key), f"unknown key {key!r} ({why})")

    channels = _strings(
        path, data.get("channels"), _child(root, "channels"), "channels", "channel names or URLs"
    )
    channels = [c for c in channels if c != _NODEFAULTS]
    conda, pypi = _dependencies_of(path, data.get("dependencies"), _child(root, "dependencies"))
    for spec in conda:  # "conda-forge::numpy" solves from conda-forge, as conda does: a channel too
        if "::" in spec:
            channel = spec.split("::", 1)[0]
            if channel and channel not in channels:
                channels.append(channel)
    version = _python_version(path, conda, python)
    if not conda:
        return Environment(python=version, pypi=tuple(pypi))
    return Environment(python=version, pypi=tuple(pypi), conda=tuple(conda), channels=tuple(channels))


def _dependencies_of(path: Path, dependencies: Any, deps_node: Any) -> tuple[list[str], list[str]]:
    """The conda specs and the pip requirements of `dependencies:`, each checked."""
    conda: list[str] = []
    pypi: list[str] = []
    if dependencies is None:
        dependencies = []
    if not isinstance(dependencies, list):
        raise _error(
            path,
            deps_node,
            f"dependencies: expected a list of conda specs (and a `pip:` list), not a {_kind(dependencies)}",
        )
    for index, entry in enumerate(dependencies):
        node = _item(deps_node, index)
        if isinstance(entry, str):
            conda.append(_conda_spec(path, node, entry.strip()))
        elif isinstance(entry, dict):
            for key, value in entry.items():
                if key != "pip":
                    raise _error(
                        path,
                        _key_node(node, key),
                        f"dependencies: unknown key {key!r} in an entry (only `pip:` takes a list, of pip "
                        "requirements)",
                    )
                pip_node = _child(node, "pip")
                for i, requirement in enumerate(
                    _strings(path, value, pip_node, "pip", "pip requirement strings")
                ):
                    pypi.append(_pip_requirement(path, _item(pip_node, i), requirement))
        else:
            raise _error(
                path,
                node,
                f"dependencies: expected a conda spec string or a `pip:` list, not {_kind(entry)} {entry!r}",
            )
    return conda, pypi


def _load(path: Path) -> tuple[Any, Any]:
    """The document's data and its YAML node tree (which knows the line of everything)."""
    yaml = _yaml()
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise EnvironmentResolutionError(f"{path}: not a YAML document (not UTF-8 text: {exc})") from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        parts = [getattr(exc, "context", None), getattr(exc, "problem", None)]
        detail = ", ".join(p for p in parts if p) or " ".join(str(exc).split())
        raise EnvironmentResolutionError(f"{where}: not a YAML document: {detail}") from None
    finally:
        loader.dispose()
    return data, node


def _conda_spec(path: Path, node: Any, spec: str) -> str:
    """`spec` as a conda match spec the rattler resolver takes (`canonical_spec`: conda's own pinned form
    "name=version=build", which `conda env export` writes, becomes "name ==version build")."""
    from satchel.packager.resolvers.rattler import canonical_spec

    if not spec:
        raise _error(path, node, "dependencies: an empty conda spec")
    if spec.startswith("-"):
        raise _error(path, node, f"dependencies: {spec!r} is an option, not a conda spec")
    try:
        return canonical_spec(spec)
    except EnvironmentResolutionError as exc:
        reason = str(exc).split(" is not a conda match spec: ", 1)[-1]
        raise _error(path, node, f"dependencies: {spec!r} is not a conda match spec: {reason}") from None


def _pip_requirement(path: Path, node: Any, line: str) -> str:
    line = line.strip()
    if line.startswith("-"):
        option = line.split()[0].split("=")[0]
        why = (
            "the index is uv's to choose (its own settings, e.g. UV_INDEX_URL)"
            if "index" in option or option in ("-i", "-f", "--find-links")
            else "list the requirements themselves"
        )
        raise _error(path, node, f"pip: {line!r}: options such as {option!r} are not supported; {why}")
    try:
        Requirement(line)
    except InvalidRequirement as exc:
        raise _error(path, node, f"pip: {line!r} is not a valid requirement: {exc}") from None
    return line


def _python_version(path: Path, conda: Sequence[str], given: str | None) -> str:
    """The file's pinned python (major.minor), else `given`, else this interpreter's."""
    with needs_extra("conda", FEATURE):
        import rattler
    if given is not None:
        given = Environment(python=given).python  # its checks: a string, a version like "3.11"
    pinned: str | None = None
    for spec in conda:
        match = rattler.MatchSpec(spec)
        if match.name is None or match.name.normalized != "python" or match.version is None:
            continue
        found = _PINNED_PYTHON.match(str(match.version))
        if found:
            pinned = f"{found.group(1)}.{found.group(2)}"
    if pinned and given and given != pinned:
        raise EnvironmentResolutionError(
            f"{path}: the file pins python {pinned}, but python={given!r} was given; drop one of them"
        )
    return pinned or given or f"{sys.version_info.major}.{sys.version_info.minor}"


def _strings(path: Path, value: Any, node: Any, what: str, expected: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _error(path, node, f"{what}: expected a list of {expected}, not a {_kind(value)}")
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise _error(path, _item(node, index), f"{what}: expected {expected}, not {_kind(item)} {item!r}")
    return [item.strip() for item in value]


def _kind(value: Any) -> str:
    return {dict: "mapping", list: "list", str: "string"}.get(type(value), type(value).__name__)


def _error(path: Path, node: Any, message: str) -> EnvironmentResolutionError:
    mark = getattr(node, "start_mark", None)
    where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
    return EnvironmentResolutionError(f"{where}: {message}")


def _child(node: Any, key: str) -> Any:
    """The value node of `key` in a mapping node (None when it is not one, or has no such key)."""
    if isinstance(node, _yaml().MappingNode):
        for key_node, value_node in node.value:
            if getattr(key_node, "value", None) == key:
                return value_node
    return None


def _key_node(node: Any, key: str) -> Any:
    if isinstance(node, _yaml().MappingNode):
        for key_node, _ in node.value:
            if getattr(key_node, "value", None) == key:
                return key_node
    return node


def _item(node: Any, index: int) -> Any:
    if isinstance(node, _yaml().SequenceNode) and index < len(node.value):
        return node.value[index]
    return node


# --- writing ------------------------------------------------------------------------------------------


def export_lock(lock: Lock, fmt: str, *, name: str | None = None) -> str:
    """`lock` as the text of a file other tools read: `fmt` is one of

    - "conda-lock": conda-lock's unified lock file, version 1 (`conda-lock.yml`): every package with its
      url, hashes (conda: md5 and sha256; pip: sha256), platform and dependencies;
    - "requirements": pip's requirements format, every PyPI package pinned with `--hash=sha256:`. A conda
      environment's conda packages are left out (named in the header); a lock with no PyPI package at
      all is an error, since its file would install nothing;
    - "environment.yml": conda's file, its conda packages pinned `name=version=build`, its PyPI packages
      `name==version` in `pip:` (`name`: the environment's name there, default satchel-<env id>).
    """
    if fmt == "conda-lock":
        return _header(lock, "conda-lock", "conda-lock install -n NAME conda-lock.yml") + _dump(
            _conda_lock(lock)
        )
    if fmt == "requirements":
        return _requirements(lock)
    if fmt == "environment.yml":
        return _header(lock, "environment.yml", "conda env create -f environment.yml") + _dump(
            _environment_yml(lock, name)
        )
    raise ValueError(f"unknown export format {fmt!r}; formats: {', '.join(FORMATS)}")


def _dump(data: Mapping[str, Any]) -> str:
    return _yaml().safe_dump(dict(data), sort_keys=False, default_flow_style=False, width=1 << 16)


def _header(lock: Lock, what: str, install: str) -> str:
    kind = f"conda, {_subdir(lock)}" if lock.is_conda else f"PyPI, Python {lock.python}, {lock.platform}"
    return (
        f"# {what} of Satchel environment {lock.env_id} ({kind}), every package pinned.\n"
        f"# Install it with: {install}\n"
    )


def _subdir(lock: Lock) -> str:
    from satchel.packager.resolvers.rattler import conda_subdir

    return lock.subdir or conda_subdir(lock.platform)


def _by_name(packages: Sequence[LockedPackage]) -> list[LockedPackage]:
    return sorted(packages, key=lambda p: p.name.lower())


def _conda_lock(lock: Lock) -> dict[str, Any]:
    """conda-lock's v1 document (conda_lock.lockfile.v1.models.Lockfile), for one platform."""
    subdir = _subdir(lock)
    packages = [_conda_entry(p, subdir) for p in _by_name(lock.conda_packages())]
    packages += [_pip_entry(p, subdir) for p in _by_name(lock.pypi_packages())]
    custom = {
        "satchel_env_id": lock.env_id,
        "satchel_resolver": lock.resolver,
        "satchel_python": lock.python,
    }
    if lock.requested_id:
        custom["satchel_requested_id"] = lock.requested_id
    if lock.virtual_packages:
        custom["satchel_virtual_packages"] = ",".join(lock.virtual_packages)
    metadata = {
        # conda-lock's own content hash hashes its lock specification, which Satchel has none of: this is
        # a hash of what Satchel was asked (same request, same hash); conda-lock only compares it
        "content_hash": {subdir: _request_hash(lock, subdir)},
        "channels": [
            {"url": channel.rstrip("/"), "used_env_vars": sorted(set(_ENV_VAR.findall(channel)))}
            for channel in lock.channels
        ],
        "platforms": [subdir],
        "sources": [],
        "custom_metadata": custom,
    }
    return {"version": 1, "metadata": metadata, "package": packages}


def _request_hash(lock: Lock, subdir: str) -> str:
    request = {
        "requested": lock.requested.to_dict(),
        "runtime": sorted(lock.runtime_requirements),
        "platform": subdir,
        "virtual_packages": sorted(lock.virtual_packages),
    }
    return hashlib.sha256(json.dumps(request, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _conda_entry(package: LockedPackage, subdir: str) -> dict[str, Any]:
    if not package.md5:
        raise ValueError(
            f"conda package {package.filename} has no md5 in the lock; conda-lock's format requires one"
        )
    entry: dict[str, Any] = {
        "name": package.name,
        "version": package.version,
        "manager": "conda",
        "platform": subdir,  # the target platform, also for a noarch package (as conda-lock writes it)
        "dependencies": _dependencies(package.depends),
        "url": package.url,
        "hash": {"md5": package.md5, "sha256": package.sha256},
        "category": "main",
        "optional": False,
    }
    build = (package.record or {}).get("build")
    if build:
        entry["build"] = build
    return entry


def _pip_entry(package: LockedPackage, subdir: str) -> dict[str, Any]:
    # a wheel's dependencies are not in the lock (uv resolved them; every one is an entry of its own)
    return {
        "name": package.name,
        "version": package.version,
        "manager": "pip",
        "platform": subdir,
        "dependencies": {},
        "url": package.url,
        "hash": {"sha256": package.sha256},
        "category": "main",
        "optional": False,
    }


def _dependencies(depends: Sequence[str]) -> dict[str, str]:
    """conda's depends ("python >=3.11", "python_abi 3.11.* *_cp311") as conda-lock keeps them: name -> the
    rest of the spec ("" for any version), two specs of one name joined."""
    found: dict[str, str] = {}
    for spec in depends:
        match = _DEPENDS_NAME.match(spec)
        if match is None:
            continue
        name, rest = match.group(1), match.group(2).strip()
        found[name] = f"{found[name]},{rest}" if found.get(name) and rest else (rest or found.get(name, ""))
    return found


def _requirements(lock: Lock) -> str:
    pypi = _by_name(lock.pypi_packages())
    conda = _by_name(lock.conda_packages())
    if not pypi:
        raise ValueError(
            f"environment {lock.env_id} has only conda packages ({len(conda)}), so its requirements file "
            "would install nothing; export it as conda-lock or environment.yml instead"
        )
    lines = [
        f"# Requirements of Satchel environment {lock.env_id}: Python {lock.python}, {lock.platform}; each "
        "package pinned to one file by its sha256.",
        "# Install them with: pip install -r requirements.txt",
    ]
    if conda:
        names = ", ".join(f"{p.name}={p.version}" for p in conda)
        lines += [
            f"# Not included: the {len(conda)} conda packages these run on ({names}).",
            "# Install those with conda first (export environment.yml or conda-lock).",
        ]
    for package in pypi:
        lines.append(f"{package.name}=={package.version} \\")
        lines.append(f"    --hash=sha256:{package.sha256}")
    return "\n".join(lines) + "\n"


def _environment_yml(lock: Lock, name: str | None) -> dict[str, Any]:
    dependencies: list[Any] = []
    if lock.is_conda:
        channels = [c.rstrip("/") for c in lock.channels]
        for package in _by_name(lock.conda_packages()):
            build = (package.record or {}).get("build")
            dependencies.append(f"{package.name}={package.version}" + (f"={build}" if build else ""))
    else:
        # a PyPI environment runs on an interpreter of the machine: conda's python of that version
        channels = list(DEFAULT_CHANNELS)
        dependencies.append(f"python={lock.python}")
    pypi = _by_name(lock.pypi_packages())
    if pypi:
        # no `pip` package is added: Satchel installs these with uv; conda adds pip itself (with a warning)
        dependencies.append({"pip": [f"{p.name}=={p.version}" for p in pypi]})
    return {
        "name": name or f"satchel-{lock.env_id[:12]}",
        "channels": [*channels, _NODEFAULTS],
        "dependencies": dependencies,
    }
