"""The version of Satchel (also the package metadata's: pyproject reads it)."""

from __future__ import annotations

__version__ = "0.1.0"
