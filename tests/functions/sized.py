"""A function bound to a large artifact, for tests of moving big blobs."""

from __future__ import annotations

import satchel

PLAIN = satchel.Environment(python="3.11")


@satchel.function(environment=PLAIN)
def digest_of(data: bytes) -> str:
    """The sha256 of `data` (bind it to a large value)."""
    import hashlib

    return hashlib.sha256(data).hexdigest()
