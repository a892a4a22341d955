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


class Channel(ABC):
    """A channel the caller has created for one worker, before and while the worker runs."""

    transport: Transport
    endpoint: dict  # what the worker passes to `attach` (JSON-able)
    pass_fds: tuple[int, ...]  # descriptors the worker process must inherit

    @abstractmethod
    def after_spawn(self) -> None:
        """Release what only the worker needed (its ends of pipes), once it has started."""


class TransportFactory(ABC):
    """Creates channels (caller side) and attaches to them (worker side)."""

    name: ClassVar[str]

    @abstractmethod
    def create(self) -> Channel:
        """Caller side: a new channel for one worker."""

    @staticmethod
    @abstractmethod
    def attach(endpoint: dict) -> Transport:
        """Worker side: open the channel described by `endpoint`."""
