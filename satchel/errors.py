"""Satchel's errors, for `from satchel.errors import RemoteError`: the floor's (core/errors.py), re-exported."""

from satchel.core.errors import *  # noqa: F403
