"""The bundle metadata document: reading, writing, version allocation. Spec: docs/bundle-format.md."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from satchel.core.errors import BundleFormatError, BundleNotFound
from satchel.packager.refs import BundleRef, check_name
from satchel.packager.resolvers.base import Lock
from satchel.packager.stores import Store, open_store
from satchel.packager.stores.base import check_digest

FORMAT_VERSION = 1
# Written when a parameter is bound to a flow task (artifacts of serializer satchel-task-1).
FORMAT_VERSION_TASKS = 2
READABLE_VERSIONS = (FORMAT_VERSION, FORMAT_VERSION_TASKS)
TASK_MANIFEST_MAGIC = b"SATCHEL-TASK 1\n"  # first bytes of a satchel-task-1 artifact blob, then JSON
KIND = "satchel.function"
_REQUIRED = ("format_version", "kind", "name", "version", "function", "interface", "code", "environment")
_ENV_ID = re.compile(r"[0-9a-f]{32}")


def document_key(name: str, version: int) -> str:
    return f"bundles/{name}/{version}.json"


def encode_document(doc: dict) -> bytes:
    return json.dumps(doc, sort_keys=True, indent=1, ensure_ascii=False).encode() + b"\n"


@dataclass(frozen=True)
class Blob:
    """A blob a bundle names, and what it is (for messages)."""

    digest: str
    what: str
    size: int | None = None


class Bundle:
    """A parsed, validated metadata document."""

    def __init__(self, doc: dict, *, ref: BundleRef | None = None, digest: str | None = None) -> None:
        if not isinstance(doc, dict):
            raise BundleFormatError(f"a bundle document is a JSON object, not {type(doc).__name__}")
        missing = [key for key in _REQUIRED if key not in doc]
        if missing:
            raise BundleFormatError(f"bundle document lacks {', '.join(missing)}; is it a Satchel bundle?")
        if doc["format_version"] not in READABLE_VERSIONS:
            raise BundleFormatError(
                f"bundle format version {doc['format_version']!r} is not supported by this Satchel "
                f"(it reads versions {', '.join(map(str, READABLE_VERSIONS))}); upgrade Satchel"
            )
        if doc["kind"] != KIND:
            raise BundleFormatError(f"bundle kind {doc['kind']!r} is not {KIND!r}")
        function = doc["function"]
        if not isinstance(function, dict) or not all(k in function for k in ("module", "qualname")):
            raise BundleFormatError("bundle document's 'function' lacks its module or qualname")
        params = function.get("parameters", [])
        if not isinstance(params, list) or not all(isinstance(p, dict) and "name" in p for p in params):
            raise BundleFormatError(
                "bundle document's 'function.parameters' is not a list of named parameters"
            )
        if not isinstance(doc["interface"], dict) or not all(
            k in doc["interface"] for k in ("request", "response")
        ):
            raise BundleFormatError("bundle document's 'interface' lacks its request or response schema")
        example = doc["interface"].get("example")
        if example is not None and not isinstance(example, dict):
            raise BundleFormatError(
                f"bundle document's 'interface.example' is {type(example).__name__}, not an object of "
                "parameter name -> JSON value"
            )
        self.doc = doc
        self.ref = ref
        self.digest = digest
        self._check_names()

    def _field_error(self, field: str, problem: str) -> BundleFormatError:
        # parse_document puts the document's location in front, as for every other format error
        return BundleFormatError(
            f"{field} {problem}; the document is malformed or was tampered with, so nothing was loaded from it"
        )

    def _check_names(self) -> None:
        """Validate every digest and file name the document gives, before any becomes a path.

        Blob digests name files in stores and in the local cache (`<root>/<hh>/<digest>`), and
        package file names name links in a build directory: a `..`, an absolute path or any other
        string there would reach a file outside them, which would then be used as a verified blob.
        """

        def entries(value: Any, field: str) -> list[dict]:
            if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
                raise self._field_error(field, f"is {type(value).__name__}, not a list of objects")
            return value

        def digest(entry: dict, field: str, what: str) -> None:
            value = entry.get(field.rpartition(".")[2])
            try:
                check_digest(value)
            except ValueError:
                raise self._field_error(
                    f"{field} ({what})", f"is {value!r}, not a sha256 digest (64 lowercase hex digits)"
                ) from None

        code = self.doc["code"]
        if not isinstance(code, dict):
            raise self._field_error("code", f"is {type(code).__name__}, not an object")
        digest(code, "code.blob", "the code package")
        for index, art in enumerate(entries(self.doc.get("artifacts", []), "artifacts")):
            if not isinstance(art.get("name"), str):
                raise self._field_error(f"artifacts[{index}].name", f"is {art.get('name')!r}, not a string")
            digest(art, f"artifacts[{index}].blob", f"artifact {art['name']!r}")
        _check_environment(self.doc["environment"], self._field_error)

    name = property(lambda self: self.doc["name"])
    version = property(lambda self: self.doc["version"])
    function = property(lambda self: self.doc["function"])
    interface = property(lambda self: self.doc["interface"])
    request_schema = property(lambda self: self.doc["interface"]["request"])
    response_schema = property(lambda self: self.doc["interface"]["response"])
    # a call's arguments in JSON form, given at export (absent in bundles exported without one)
    example = property(lambda self: self.doc["interface"].get("example"))
    artifacts = property(lambda self: self.doc.get("artifacts", []))
    provenance = property(lambda self: self.doc.get("provenance", {}))

    @property
    def lock(self) -> Lock:
        env = dict(self.doc["environment"])
        env.pop("id", None)
        return Lock.from_dict(env)

    def blobs(self) -> Iterator[Blob]:
        """Every blob the bundle names: code, artifacts, package files."""
        code = self.doc["code"]
        yield Blob(code["blob"], "code package", code.get("size"))
        for art in self.artifacts:
            yield Blob(art["blob"], f"artifact {art['name']!r}", art.get("size"))
        for pkg in self.doc["environment"]["packages"]:
            yield Blob(pkg["sha256"], f"package {pkg['filename']}", pkg.get("size"))


def _check_environment(env: Any, error: Callable[[str, str], Exception]) -> None:
    """The environment's id and every package's file name and sha256, before any becomes a path."""
    if not isinstance(env, dict):
        raise error("environment", f"is {type(env).__name__}, not an object")
    if "id" in env and not (isinstance(env["id"], str) and _ENV_ID.fullmatch(env["id"])):
        raise error("environment.id", f"is {env['id']!r}, not 32 lowercase hex digits")
    packages = env.get("packages")
    if not isinstance(packages, list) or not all(isinstance(item, dict) for item in packages):
        raise error("environment.packages", f"is {type(packages).__name__}, not a list of objects")
    for index, pkg in enumerate(packages):
        filename = pkg.get("filename")
        field = f"environment.packages[{index}]"
        if not (
            isinstance(filename, str)
            and filename not in ("", ".", "..")
            and not any(c in filename for c in "/\\\0")
        ):
            raise error(f"{field}.filename", f"is {filename!r}, not a plain file name")
        try:
            check_digest(pkg.get("sha256"))
        except ValueError:
            raise error(
                f"{field}.sha256 (package {filename})",
                f"is {pkg.get('sha256')!r}, not a sha256 digest (64 lowercase hex digits)",
            ) from None
        subdir = pkg.get("subdir")
        if subdir is not None and not (
            isinstance(subdir, str) and re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)?", subdir)
        ):
            raise error(f"{field}.subdir", f"is {subdir!r}, not a conda platform name")


def check_lock_names(env: Any, where: str) -> None:
    """`_check_environment` for a lock document on its own (locks/, named environments)."""

    def error(field: str, problem: str) -> BundleFormatError:
        return BundleFormatError(
            f"{where}: {field} {problem}; the document is malformed or was tampered with"
        )

    _check_environment(env, error)


def read_bundle(ref: BundleRef | str) -> tuple[Bundle, Store]:
    """Fetch and validate a bundle's metadata document; resolves 'latest' when no version is given."""
    ref = BundleRef.parse(ref)
    store = open_store(ref.store)
    version = ref.version
    if version is None:
        versions = list_versions(store, ref.name)
        if not versions:
            names = list_names(store)
            hint = f" Bundles there: {', '.join(names[:10])}." if names else " The store holds no bundles."
            raise BundleNotFound(f"no bundle named {ref.name!r} in {store.url}.{hint}")
        version = versions[-1]
    try:
        data = store.read_document(document_key(ref.name, version))
    except KeyError:
        versions = list_versions(store, ref.name)
        have = f"versions there: {', '.join(map(str, versions))}" if versions else "no such name there"
        raise BundleNotFound(f"bundle {ref.name}:{version} not found in {store.url} ({have})") from None
    digest = hashlib.sha256(data).hexdigest()
    if ref.digest and ref.digest != digest:
        from satchel.core.errors import BlobCorrupted

        raise BlobCorrupted(
            f"metadata document of {ref.name}:{version} in {store.url} hashes to sha256:{digest}, "
            f"but the reference pins sha256:{ref.digest}"
        )
    pinned = BundleRef(store.url, ref.name, version, digest)
    return parse_document(store, document_key(ref.name, version), data, ref=pinned), store


def document_location(store: Store, key: str) -> str:
    """Where a document is, for messages: the store's URL and the key."""
    return f"{store.url.rstrip('/')}/{key}"


def parse_document(store: Store, key: str, data: bytes, *, ref: BundleRef | None = None) -> Bundle:
    """A validated Bundle from the bytes of document `key`; BundleFormatError naming the file."""
    try:
        return _parse(data, ref)
    except BundleFormatError as exc:
        raise BundleFormatError(f"{document_location(store, key)}: {exc}") from None


def _parse(data: bytes, ref: BundleRef | None = None) -> Bundle:
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise BundleFormatError(f"not valid JSON: {exc}") from None
    return Bundle(doc, ref=ref, digest=hashlib.sha256(data).hexdigest())


@dataclass(frozen=True)
class Listing:
    """What `list_bundles` found: each name's latest readable version, and the documents it skipped."""

    # (name, every version there, the latest readable one: its `ref` has the version and digest)
    bundles: list[tuple[str, list[int], Bundle]]
    skipped: list[tuple[str, str]]  # (location, why)


def list_bundles(store: Store) -> Listing:
    """Every bundle name in `store` with its latest readable version; a stray or corrupt document is
    skipped and reported, never fatal (it falls back to the name's previous version)."""
    skipped: list[tuple[str, str]] = []
    by_name: dict[str, list[int]] = {}
    for key in store.list_documents("bundles/"):
        parts = key.split("/")
        stem = parts[-1].removesuffix(".json")
        canonical = stem.isascii() and stem.isdigit() and str(int(stem)) == stem  # "01" is not a version
        if len(parts) != 3 or not parts[-1].endswith(".json") or not canonical or not _valid_name(parts[1]):
            skipped.append(
                (document_location(store, key), "not a bundle document (bundles/NAME/VERSION.json)")
            )
            continue
        by_name.setdefault(parts[1], []).append(int(stem))
    bundles = []
    for name in sorted(by_name):
        versions = sorted(by_name[name])
        for version in reversed(versions):
            key = document_key(name, version)
            try:
                data = store.read_document(key)
                bundle = _parse(data, BundleRef(store.url, name, version, hashlib.sha256(data).hexdigest()))
            except KeyError:  # removed since it was listed
                continue
            except BundleFormatError as exc:
                skipped.append((document_location(store, key), str(exc)))
                continue
            bundles.append((name, versions, bundle))
            break
    return Listing(bundles, skipped)


def _valid_name(name: str) -> bool:
    try:
        check_name(name)
    except ValueError:
        return False
    return True


def list_versions(store: Store, name: str) -> list[int]:
    check_name(name)
    versions = []
    for key in store.list_documents(f"bundles/{name}/"):
        stem = key.rsplit("/", 1)[-1].removesuffix(".json")
        if stem.isdigit():
            versions.append(int(stem))
    return sorted(versions)


def list_names(store: Store) -> list[str]:
    names = set()
    for key in store.list_documents("bundles/"):
        parts = key.split("/")
        if len(parts) == 3 and parts[2].endswith(".json"):
            names.add(parts[1])
    return sorted(names)


#: What `satchel rm` leaves of a removed version: `bundles/<name>/<version>.removed` (packager/gc.py).
REMOVED_SUFFIX = ".removed"


def publish(store: Store, doc: dict[str, Any]) -> BundleRef:
    """Write a metadata document under the next free version of its name (exclusive create).

    A removed version's number is never given again (its tombstone keeps it), so `name:3` names one
    bundle or none, ever.
    """
    name = check_name(doc["name"])
    used = [
        int(stem)
        for key in store.list_documents(f"bundles/{name}/")
        if (stem := key.rsplit("/", 1)[-1].removesuffix(".json").removesuffix(REMOVED_SUFFIX)).isdigit()
    ]
    version = max(used, default=0) + 1
    for _ in range(1000):
        doc["version"] = version
        data = encode_document(doc)
        if store.write_document(document_key(name, version), data, exclusive=True):
            return BundleRef(store.url, name, version, hashlib.sha256(data).hexdigest())
        version += 1
    raise BundleFormatError(f"could not allocate a version for {name!r} in {store.url}")
