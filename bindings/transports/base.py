"""The transport interface: a duplex channel of whole messages between a caller and one worker.

Backends: `pipe` (length-prefixed frames over two OS pipes) now; `shm` (a shared-memory ring) later.
A backend has two halves: the caller creates the channel and gets a `Transport` plus the
`WorkerEndpoint` a worker needs to attach; the worker calls `attach(endpoint)` on the same backend.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar


class Transport(ABC):
    """One side of a message channel. `send`/`recv` move whole messages; thread safety is the caller's."""

    name: ClassVar[str]

    @abstractmethod
    def send(self, parts: Sequence[bytes | bytearray | memoryview]) -> None:
        """Send one message made of `parts` (concatenated on the wire, never copied together here)."""

    @abstractmethod
    def recv(self, timeout: float | None = None) -> bytes:
        """The next whole message. Raises TransportTimeout, or TransportClosed when the peer is gone."""

    @abstractmethod
    def close(self) -> None: ...


class TransportFactory(ABC):
    """Creates channels for workers (caller side) and attaches to them (worker side)."""

    name: ClassVar[str]

    @abstractmethod
    def create(self) -> tuple[Transport, dict, Sequence[int]]:
        """Caller side: (transport, endpoint description for the worker, fds the worker must inherit)."""

    @abstractmethod
    def after_spawn(self) -> None:
        """Caller side, once the worker is started: release what only the worker needed."""

    @staticmethod
    @abstractmethod
    def attach(endpoint: dict) -> Transport:
        """Worker side: open the channel described by `endpoint`."""
