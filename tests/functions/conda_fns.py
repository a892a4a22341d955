"""Plain functions that the conda tests wrap in `satchel.function(environment=...)` at test time (the
test channel's location is only known then)."""

from __future__ import annotations


def describe(n: int) -> str:
    """Say a number in words, with the humanize of the function's own environment."""
    import humanize

    return humanize.intword(n)


def where() -> dict[str, str]:
    """The worker's interpreter, prefix and the versions it imports."""
    import sys

    import humanize

    return {"executable": sys.executable, "prefix": sys.prefix, "humanize": humanize.__version__}


def escape_markup(text: str) -> str:
    """markupsafe's compiled extension, from a conda package built for this Python."""
    import markupsafe
    from markupsafe import _speedups  # noqa: F401 - the compiled part must load

    return str(markupsafe.escape(text))
