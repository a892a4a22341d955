"""Named environments in a store: locks another team publishes ("ml/sklearn") and others build on.

`NamedEnvironments(store).publish("ml/sklearn", lock)` writes version N, immutable, and moves the tag
`latest` onto it; `tag("ml/sklearn", 3, "stable")` moves a tag; `lock("ml/sklearn:stable")` reads one
back, verified. Layout under the store's root (a `_` segment can never be a name's part, so a name such
as "ml/_versions" cannot collide with another name's documents):

    environments/<name>/_versions/<N>.json          version N: the lock, when and by whom (immutable)
    environments/<name>/_versions/<N>.removed       a removed version's tombstone: N is never given again
    environments/<name>/_tags/<tag>/<S>.json        move S of a tag: the version it points at

Concurrency. Versions are allocated as bundle versions are (`packager/bundle.py publish`): an exclusive
create of the next free number, so concurrent publishers get distinct numbers and a version's document
never changes. A tag is never rewritten in place: its value is its move with the highest sequence
number, and a move reads that head S and creates S+1 exclusively. The exclusive create is atomic in
every store (link(2) in a file store, If-None-Match on S3), so of two movers that read the same head
exactly one lands; the other reads the new head and tries again. A move is therefore a compare-and-swap
on the head: none is lost (every move stays recorded, in order), a reader sees one whole move or the
one before, and `publish` moves `latest` only forward: a publisher that loses the race to a newer
version leaves `latest` on it. (S3 lists what was written before; a store without exclusive create
refuses to publish rather than lose moves.) A publisher killed after writing its version and before
moving `latest` leaves a version no tag names; the next publish or `tag` moves past it.

Every package file is mirrored into the store before the version document names it, under an export
journal (packager/gc.py), so a concurrent `satchel gc` never collects one; once written, the version
document names them and gc keeps them for as long as it exists.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import getpass
import hashlib
import json
import re
import socket
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

from satchel.core.errors import BundleFormatError, EnvironmentNotFound, StoreError
from satchel.packager.bundle import document_location
from satchel.packager.gc import ExportJournal
from satchel.packager.locking import mirror, parse_lock, record_lock
from satchel.packager.resolvers.base import Lock
from satchel.packager.stores import Store, open_store
from satchel.packager.stores.base import is_digest

PREFIX = "environments/"
KIND = "satchel.environment"
FORMAT_VERSION = 1
DEFAULT_TAG = "latest"
_VERSIONS = "_versions"
_TAGS = "_tags"
_REMOVED = ".removed"
_PART = re.compile(r"[a-z0-9][a-z0-9_.-]*")
_TAG = re.compile(r"[a-z][a-z0-9_.-]*")
_MAX_NAME = 200
_ATTEMPTS = 1000  # each failed exclusive create means another writer got through: progress is made


def check_name(name: str) -> str:
    """`name` if it names an environment ("ml/sklearn": parts of [a-z0-9][a-z0-9_.-]*, joined by /)."""
    if (
        not isinstance(name, str)
        or not 0 < len(name) <= _MAX_NAME
        or not all(_PART.fullmatch(part) for part in name.split("/"))
    ):
        raise ValueError(
            f"environment name {name!r} is not valid: one or more '/'-separated parts of lowercase "
            "letters, digits, '.', '_' and '-', each starting with a letter or digit (e.g. 'ml/sklearn')"
        )
    return name


def check_tag(tag: str) -> str:
    """`tag` if it can name a tag (latest, candidate, stable, ...: [a-z][a-z0-9_.-]*)."""
    if not isinstance(tag, str) or not _TAG.fullmatch(tag) or len(tag) > _MAX_NAME:
        raise ValueError(
            f"tag {tag!r} is not valid: lowercase letters, digits, '.', '_' and '-', starting with a "
            "letter (e.g. 'stable'); a version is a number"
        )
    return tag


def parse_spec(spec: str) -> tuple[str, int | str]:
    """ "team/name" -> (name, "latest"); "team/name:stable" -> (name, "stable"); "team/name:3" -> (name, 3)."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"a named environment is 'team/name[:tag|:version]', got {spec!r}")
    name, sep, selector = spec.strip().partition(":")
    check_name(name)
    if not sep:
        return name, DEFAULT_TAG
    if selector.isascii() and selector.isdigit():
        if int(selector) < 1 or str(int(selector)) != selector:
            raise ValueError(f"{spec!r}: a version is a positive number without leading zeros")
        return name, int(selector)
    try:
        return name, check_tag(selector)
    except ValueError as exc:
        raise ValueError(f"{spec!r}: {exc}") from None


def version_key(name: str, version: int) -> str:
    return f"{PREFIX}{name}/{_VERSIONS}/{version}.json"


def tag_key(name: str, tag: str, sequence: int) -> str:
    return f"{PREFIX}{name}/{_TAGS}/{tag}/{sequence}.json"


def _encode(doc: dict) -> bytes:
    return json.dumps(doc, sort_keys=True, indent=1, ensure_ascii=False).encode() + b"\n"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _who() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # no user name in some containers
        import os

        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def _number(stem: str) -> int | None:
    """The version or sequence number a key's last part spells ("3"; not "03", not "x")."""
    if stem.isascii() and stem.isdigit() and str(int(stem)) == stem and int(stem) > 0:
        return int(stem)
    return None


@dataclass(frozen=True)
class Version:
    """One published version, read and verified."""

    name: str
    version: int
    lock: Lock
    created: str
    by: str
    digest: str  # sha256 of the version document

    @property
    def env_id(self) -> str:
        return self.lock.env_id

    def summary(self) -> dict[str, Any]:
        """What `show` says of a version (and `satchel env show --json`)."""
        return {
            "version": self.version,
            "env_id": self.env_id,
            "python": self.lock.python,
            "resolver": self.lock.resolver,
            "platform": self.lock.subdir or self.lock.platform,
            "packages": len(self.lock.packages),
            "created": self.created,
            "by": self.by,
        }


@dataclass(frozen=True)
class Tag:
    """A tag's current move."""

    tag: str
    version: int
    moved: str
    by: str
    sequence: int  # how many times it moved
    document: str | None = None  # sha256 of the version document it was moved onto


@dataclass
class Summary:
    """One name of `list()`: its versions and where its tags point."""

    name: str
    versions: list[int]
    tags: dict[str, int]


@dataclass
class Listing:
    """What `list()` found, and the documents it could not read (location, why)."""

    environments: list[Summary] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Details:
    """What `show(name)` found: every readable version, the tags, and what it could not read."""

    name: str
    versions: list[Version]
    tags: dict[str, Tag]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "versions": [v.summary() for v in self.versions],
            "tags": {t: tag.version for t, tag in sorted(self.tags.items())},
        }


class NamedEnvironments:
    """The named environments of one store (default: SATCHEL_STORE)."""

    def __init__(self, store: str | Store | None = None) -> None:
        self.store = store if isinstance(store, Store) else open_store(store)

    # -- writing ----------------------------------------------------------------------------------

    def publish(self, name: str, lock: Lock) -> int:
        """Mirror every package file of `lock` into the store, write it as the next version of `name`
        and move `latest` onto it (unless a newer version got there first); return the version."""
        check_name(name)
        if not isinstance(lock, Lock):
            raise TypeError(f"publish(lock=...) takes a resolved Lock, not {type(lock).__name__}")
        with closing(ExportJournal(self.store)) as journal:
            mirror(lock, self.store, keep=journal.keep)
            record_lock(self.store, lock)
            version, digest = self._write_version(name, lock)
        self._move(name, DEFAULT_TAG, version, forward_only=True, document=digest)
        return version

    def _write_version(self, name: str, lock: Lock) -> tuple[int, str]:
        """Write `lock` as the next free version of `name`; its number and the document's sha256."""
        prefix = f"{PREFIX}{name}/{_VERSIONS}/"
        used = [
            n
            for key in self.store.list_documents(prefix)
            if (n := _number(key[len(prefix) :].removesuffix(".json").removesuffix(_REMOVED))) is not None
        ]
        version = max(used, default=0) + 1
        for _ in range(_ATTEMPTS):
            doc = {
                "kind": KIND,
                "format_version": FORMAT_VERSION,
                "name": name,
                "version": version,
                "created": _now(),
                "by": _who(),
                "lock": lock.to_dict(),
            }
            data = _encode(doc)
            if self.store.write_document(version_key(name, version), data, exclusive=True):
                return version, hashlib.sha256(data).hexdigest()
            version += 1
        raise StoreError(f"could not allocate a version of environment {name!r} in {self.store.url}")

    def tag(self, name: str, version_or_tag: int | str, tag: str) -> int:
        """Move `tag` of `name` onto a version (a number, or the version another tag names); return it.

        Tags move; versions never do. EnvironmentNotFound, listing the versions, if there is no such
        version.
        """
        check_name(name)
        check_tag(tag)
        target = self._read_version(name, self._version_of(name, version_or_tag))
        self._move(name, tag, target.version, document=target.digest)
        return target.version

    def _move(self, name: str, tag: str, version: int, *, document: str, forward_only: bool = False) -> bool:
        """Move `tag` onto `version` (whose document hashes to `document`): a compare-and-swap on the
        tag's head (see the module's docstring); False if `forward_only` and the tag already points at
        `version` or a newer one."""
        for _ in range(_ATTEMPTS):
            sequence, head = self._head(name, tag)
            if forward_only and head is not None:
                try:
                    current = self._read_tag(name, tag, sequence, head)
                except BundleFormatError:
                    current = None  # a damaged head is replaced, never followed
                if current is not None and current.version >= version:
                    return False
            doc = {
                "kind": f"{KIND}.tag",
                "name": name,
                "tag": tag,
                "sequence": sequence + 1,
                "version": version,
                "document": document,
                "moved": _now(),
                "by": _who(),
            }
            if self.store.write_document(tag_key(name, tag, sequence + 1), _encode(doc), exclusive=True):
                return True
        raise StoreError(f"could not move tag {tag!r} of environment {name!r} in {self.store.url}")

    # -- reading ----------------------------------------------------------------------------------

    def lock(self, spec: str) -> Lock:
        """The lock "team/name" (tag latest), "team/name:stable" or "team/name:3" names, verified."""
        return self.get(spec).lock

    def get(self, spec: str) -> Version:
        """The version a spec names (see `lock`), with when and by whom it was published."""
        name, selector = parse_spec(spec)
        if isinstance(selector, int):
            return self._read_version(name, selector)
        tag = self._tag(name, selector)
        found = self._read_version(name, tag.version)
        if tag.document is not None and tag.document != found.digest:
            raise BundleFormatError(
                f"{document_location(self.store, version_key(name, tag.version))}: the document changed "
                f"since tag {selector!r} was moved onto it (its sha256 was {tag.document}); versions are "
                "immutable, so it was tampered with and is not used"
            )
        return found

    def versions(self, name: str) -> list[int]:
        """The versions of `name` there are (removed ones excluded), oldest first."""
        check_name(name)
        prefix = f"{PREFIX}{name}/{_VERSIONS}/"
        found = []
        for key in self.store.list_documents(prefix):
            rest = key[len(prefix) :]
            if rest.endswith(".json") and (n := _number(rest.removesuffix(".json"))) is not None:
                found.append(n)
        return sorted(found)

    def tag_of(self, name: str, tag: str) -> Tag:
        """Where `tag` of `name` points now. EnvironmentNotFound (listing the tags) if it has none."""
        return self._tag(check_name(name), check_tag(tag))

    def tags(self, name: str) -> dict[str, Tag]:
        """Where each tag of `name` points. BundleFormatError if a tag's current move is damaged."""
        check_name(name)
        return {tag: self._read_tag(name, tag, seq, key) for tag, (seq, key) in self._heads(name).items()}

    def names(self) -> list[str]:
        """Every name with at least one version or tag."""
        return sorted({name for name, _, _ in self._keys()})

    def list(self) -> Listing:
        """Every name, its versions and where its tags point; a damaged tag is skipped and reported."""
        listing = Listing()
        by_name: dict[str, Summary] = {}
        for name, area, rest in self._keys():
            entry = by_name.setdefault(name, Summary(name, [], {}))
            if area == _VERSIONS and rest.endswith(".json") and (n := _number(rest[:-5])) is not None:
                entry.versions.append(n)
        for name in sorted(by_name):
            entry = by_name[name]
            entry.versions.sort()
            for tag, (seq, key) in self._heads(name).items():
                try:
                    entry.tags[tag] = self._read_tag(name, tag, seq, key).version
                except BundleFormatError as exc:
                    listing.skipped.append((document_location(self.store, key), str(exc)))
            listing.environments.append(entry)
        return listing

    def show(self, name: str) -> Details:
        """Every version of `name` (env_id, python, resolver, package count, created, by whom) and its
        tags; a version or tag that cannot be read or verified is skipped and reported."""
        check_name(name)
        versions = self.versions(name)
        heads = self._heads(name)
        if not versions and not heads:
            raise self._unknown_name(name)
        details = Details(name, [], {})
        for version in versions:
            try:
                details.versions.append(self._read_version(name, version))
            except BundleFormatError as exc:
                details.skipped.append((document_location(self.store, version_key(name, version)), str(exc)))
            except EnvironmentNotFound:  # removed since listed
                continue
        for tag, (seq, key) in heads.items():
            try:
                details.tags[tag] = self._read_tag(name, tag, seq, key)
            except BundleFormatError as exc:
                details.skipped.append((document_location(self.store, key), str(exc)))
        return details

    # -- the documents ----------------------------------------------------------------------------

    def _keys(self):
        """(name, area, rest) of every document under environments/ that is laid out as ours."""
        for key in self.store.list_documents(PREFIX):
            parts = key[len(PREFIX) :].split("/")
            for index, part in enumerate(parts):
                if part in (_VERSIONS, _TAGS) and index > 0:
                    name = "/".join(parts[:index])
                    try:
                        check_name(name)
                    except ValueError:
                        break
                    yield name, part, "/".join(parts[index + 1 :])
                    break

    def _heads(self, name: str) -> dict[str, tuple[int, str]]:
        """Each tag's current move: tag -> (sequence, key)."""
        prefix = f"{PREFIX}{name}/{_TAGS}/"
        heads: dict[str, tuple[int, str]] = {}
        for key in self.store.list_documents(prefix):
            tag, sep, leaf = key[len(prefix) :].partition("/")
            if not (sep and _TAG.fullmatch(tag) and leaf.endswith(".json")):
                continue
            sequence = _number(leaf.removesuffix(".json"))
            if sequence is not None and sequence > heads.get(tag, (0, ""))[0]:
                heads[tag] = (sequence, key)
        return dict(sorted(heads.items()))

    def _head(self, name: str, tag: str) -> tuple[int, str | None]:
        prefix = f"{PREFIX}{name}/{_TAGS}/{tag}/"
        best, best_key = 0, None
        for key in self.store.list_documents(prefix):
            leaf = key[len(prefix) :]
            sequence = _number(leaf.removesuffix(".json")) if leaf.endswith(".json") else None
            if sequence is not None and sequence > best:
                best, best_key = sequence, key
        return best, best_key

    def _tag(self, name: str, tag: str) -> Tag:
        sequence, key = self._head(name, tag)
        if key is None:
            raise self._unknown_tag(name, tag)
        return self._read_tag(name, tag, sequence, key)

    def _read_tag(self, name: str, tag: str, sequence: int, key: str) -> Tag:
        where = document_location(self.store, key)
        try:
            doc = json.loads(self.store.read_document(key))
        except KeyError:
            raise BundleFormatError(
                f"{where}: the tag's move vanished; tag moves are never deleted"
            ) from None
        except ValueError as exc:
            raise BundleFormatError(f"{where}: not valid JSON: {exc}") from None
        if not (
            isinstance(doc, dict)
            and doc.get("name") == name
            and doc.get("tag") == tag
            and doc.get("sequence") == sequence
            and isinstance(doc.get("version"), int)
            and not isinstance(doc.get("version"), bool)
            and doc["version"] > 0
            and (
                doc.get("document") is None
                or (isinstance(doc["document"], str) and is_digest(doc["document"]))
            )
        ):
            raise BundleFormatError(
                f"{where}: not a move of tag {tag!r} of {name!r} (name, tag, sequence and a version "
                "number expected); the document is malformed or was tampered with"
            )
        return Tag(
            tag,
            doc["version"],
            str(doc.get("moved", "")),
            str(doc.get("by", "")),
            sequence,
            doc.get("document"),
        )

    def _version_of(self, name: str, version_or_tag: int | str) -> int:
        if isinstance(version_or_tag, bool):
            raise TypeError(f"a version is a number or a tag name, not {version_or_tag!r}")
        if isinstance(version_or_tag, int):
            if version_or_tag < 1:
                raise ValueError(f"a version is a positive number, not {version_or_tag}")
            return version_or_tag
        if isinstance(version_or_tag, str) and (n := _number(version_or_tag)) is not None:
            return n
        return self._tag(name, check_tag(version_or_tag)).version

    def _read_version(self, name: str, version: int) -> Version:
        key = version_key(name, version)
        where = document_location(self.store, key)
        try:
            data = self.store.read_document(key)
        except KeyError:
            raise self._unknown_version(name, version) from None
        try:
            doc = json.loads(data)
        except ValueError as exc:
            raise BundleFormatError(f"{where}: not valid JSON: {exc}") from None
        if not isinstance(doc, dict) or doc.get("kind") != KIND:
            raise BundleFormatError(f"{where}: not a named environment document (kind {KIND!r})")
        if doc.get("format_version") != FORMAT_VERSION:
            raise BundleFormatError(
                f"{where}: format version {doc.get('format_version')!r} is not supported by this Satchel "
                f"(it reads version {FORMAT_VERSION}); upgrade Satchel"
            )
        if doc.get("name") != name or doc.get("version") != version:
            raise BundleFormatError(
                f"{where}: it says it is {doc.get('name')!r} version {doc.get('version')!r}, not "
                f"{name!r} version {version}; the document was moved or tampered with, so it is not used"
            )
        if not isinstance(doc.get("lock"), dict) or "env_id" not in doc["lock"]:
            raise BundleFormatError(
                f"{where}: its lock (with its env_id) is missing; the document is malformed"
            )
        lock = parse_lock(doc["lock"], where)
        return Version(
            name,
            version,
            lock,
            str(doc.get("created", "")),
            str(doc.get("by", "")),
            hashlib.sha256(data).hexdigest(),
        )

    # -- errors -----------------------------------------------------------------------------------

    def _unknown_name(self, name: str) -> EnvironmentNotFound:
        names = self.names()
        close = difflib.get_close_matches(name, names, n=3)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        there = (
            f" Environments there: {', '.join(names[:10])}."
            if names
            else " The store holds no named environments."
        )
        return EnvironmentNotFound(f"no environment named {name!r} in {self.store.url}{hint}{there}")

    def _unknown_version(self, name: str, version: int) -> EnvironmentNotFound:
        versions = self.versions(name)
        if not versions and not self._heads(name):
            return self._unknown_name(name)
        have = f"versions there: {', '.join(map(str, versions))}" if versions else "it has no versions"
        return EnvironmentNotFound(
            f"environment {name!r} has no version {version} in {self.store.url} ({have})"
        )

    def _unknown_tag(self, name: str, tag: str) -> EnvironmentNotFound:
        heads = self._heads(name)
        versions = self.versions(name)
        if not versions and not heads:
            return self._unknown_name(name)
        close = difflib.get_close_matches(tag, list(heads), n=3)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        tags = f"tags there: {', '.join(heads)}" if heads else "it has no tags"
        have = f"versions: {', '.join(map(str, versions))}" if versions else "no versions"
        return EnvironmentNotFound(
            f"environment {name!r} has no tag {tag!r} in {self.store.url}{hint} ({tags}; {have})"
        )
