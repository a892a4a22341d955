"""The bundle metadata document: reading, writing, version allocation. Spec: docs/bundle-format.md."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from satchel.errors import BundleFormatError, BundleNotFound
from satchel.packager.refs import BundleRef, check_name
from satchel.packager.resolvers.base import Lock
from satchel.packager.stores import Store, open_store

FORMAT_VERSION = 1
# Written when a parameter is bound to a flow task (artifacts of serializer satchel-task-1).
FORMAT_VERSION_TASKS = 2
READABLE_VERSIONS = (FORMAT_VERSION, FORMAT_VERSION_TASKS)
TASK_MANIFEST_MAGIC = b"SATCHEL-TASK 1\n"  # first bytes of a satchel-task-1 artifact blob, then JSON
KIND = "satchel.function"
_REQUIRED = ("format_version", "kind", "name", "version", "function", "interface", "code", "environment")


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
        self.doc = doc
        self.ref = ref
        self.digest = digest

    name = property(lambda self: self.doc["name"])
    version = property(lambda self: self.doc["version"])
    function = property(lambda self: self.doc["function"])
    interface = property(lambda self: self.doc["interface"])
    request_schema = property(lambda self: self.doc["interface"]["request"])
    response_schema = property(lambda self: self.doc["interface"]["response"])
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
        from satchel.errors import BlobCorrupted

        raise BlobCorrupted(
            f"metadata document of {ref.name}:{version} in {store.url} hashes to sha256:{digest}, "
            f"but the reference pins sha256:{ref.digest}"
        )
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise BundleFormatError(
            f"metadata document of {ref.name}:{version} is not valid JSON: {exc}"
        ) from None
    pinned = BundleRef(store.url, ref.name, version, digest)
    return Bundle(doc, ref=pinned, digest=digest), store


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
