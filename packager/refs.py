"""Bundle references: `<store-url>#<name>:<version>[@sha256:<hex>]`, or `name[:version]` in the default store."""

from __future__ import annotations

import re
from dataclasses import dataclass

from satchel.core import settings as config

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_TAIL = re.compile(r"^(?P<name>[^:@#]+)(?::(?P<version>[^@]+))?(?:@sha256:(?P<digest>[0-9a-f]{64}))?$")


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"bundle name {name!r} is not valid: use letters, digits, '.', '_' and '-', starting with a "
            "letter or digit (at most 128 characters)"
        )
    return name


@dataclass(frozen=True)
class BundleRef:
    """Names one bundle (or, with `version=None`, the latest version of a name) in a store."""

    store: str
    name: str
    version: int | None = None
    digest: str | None = None  # sha256 of the metadata document, when pinned

    def __post_init__(self) -> None:
        check_name(self.name)

    def __str__(self) -> str:
        text = f"{self.store}#{self.name}"
        if self.version is not None:
            text += f":{self.version}"
        if self.digest:
            text += f"@sha256:{self.digest}"
        return text

    def __repr__(self) -> str:
        version = f":{self.version}" if self.version is not None else ""
        digest = f"@sha256:{self.digest[:12]}…" if self.digest else ""
        return f"<BundleRef {self.store}#{self.name}{version}{digest}>"

    def _repr_html_(self) -> str:
        """The bundle's summary (its document read from the store), or why it cannot be read."""
        from satchel.core.errors import SatchelError
        from satchel.core.summary import card
        from satchel.packager.bundle import read_bundle
        from satchel.packager.summary import bundle_html

        try:
            bundle, _ = read_bundle(self)
        except (SatchelError, OSError, ValueError) as exc:
            return card(
                "satchel bundle reference", str(self), [("unreadable", f"{type(exc).__name__}: {exc}")]
            )
        return bundle_html(bundle)

    @classmethod
    def parse(cls, text: str | BundleRef, default_store: str | None = None) -> BundleRef:
        """Parse a reference. `name` and `name:3` resolve in `default_store` (else SATCHEL_STORE)."""
        if isinstance(text, BundleRef):
            return text
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"a bundle reference must be a non-empty string, got {text!r}")
        text = text.strip()
        if "#" in text:
            store, _, tail = text.rpartition("#")
        elif "://" in text or text.startswith(("/", ".", "~")):
            raise ValueError(
                f"reference {text!r} names a store but no bundle: add '#<name>[:<version>]', "
                f"e.g. {text}#describe:1"
            )
        else:
            store, tail = default_store or config.default_store_url(), text
        match = _TAIL.match(tail)
        if not match:
            raise ValueError(f"cannot parse bundle reference {text!r}: expected [STORE#]NAME[:VERSION]")
        version_text = match.group("version")
        version: int | None = None
        if version_text is not None and version_text != "latest":
            if not version_text.isdigit() or int(version_text) < 1:
                raise ValueError(f"reference {text!r}: version must be a positive integer or 'latest'")
            version = int(version_text)
        from satchel.packager.stores import open_store

        return cls(open_store(store).url, match.group("name"), version, match.group("digest"))
