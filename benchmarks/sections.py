"""The `--only a,b` option every benchmark runner has: which of its sections to run."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def chosen_sections(parser: argparse.ArgumentParser, only: str, known: Sequence[str]) -> list[str]:
    """The sections named in `only` (comma-separated); a parser error naming any unknown one."""
    chosen = [s for s in only.split(",") if s]
    unknown = set(chosen) - set(known)
    if unknown:
        parser.error(f"unknown section(s) {', '.join(sorted(unknown))}; choose from {', '.join(known)}")
    return chosen
