"""The small interface every serving backend has: start the functions behind the REST gateway, get its
URL, stop."""

from __future__ import annotations

from abc import ABC, abstractmethod

from ..options import ServeOptions


class Backend(ABC):
    """Hosts bundle references behind the REST gateway."""

    @abstractmethod
    def start(self, refs: list[str], options: ServeOptions) -> str:
        """Load and serve `refs`; return the gateway's base URL once it answers requests."""

    @abstractmethod
    def stop(self) -> None:
        """Stop serving and release what `start` took (processes, cluster resources)."""
