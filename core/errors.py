"""Every error Satchel raises on purpose. Standard library only: the worker imports this too."""

from __future__ import annotations


class SatchelError(Exception):
    """Base class of Satchel's own errors."""


class MissingExtra(SatchelError, ImportError):
    """A feature whose optional dependencies (an extra of the `satchel` package) are not installed.

    One line: the feature, the missing module, and the `pip install 'satchel[EXTRA]'` that adds it
    (raised by `satchel.core.extras.needs_extra`).
    """

    def __init__(self, feature: str, module: str, extra: str | None = None) -> None:
        self.feature = feature
        self.module = module
        self.extra = extra
        hint = f": pip install 'satchel[{extra}]'" if extra else ""
        super().__init__(f"{feature} needs {module}, which is not installed{hint}", name=module)

    def __reduce__(self):  # ImportError's own pickling would drop the fields
        return (type(self), (self.feature, self.module, self.extra))


# --- declaring and exporting -------------------------------------------------------------------


class SchemaError(SatchelError, TypeError):
    """A type hint that cannot become an Avro schema (or an unannotated parameter)."""


class CodeCaptureError(SatchelError):
    """The function's source cannot be packaged (defined interactively, nested, ...)."""


class EnvironmentResolutionError(SatchelError):
    """The requested environment cannot be resolved or locked."""


class InterpreterNotFound(EnvironmentResolutionError):
    """The requested Python version is not installed on this machine."""


class EnvironmentBuildError(SatchelError):
    """A locked environment could not be materialized."""


# --- stores and bundles ------------------------------------------------------------------------


class StoreError(SatchelError):
    """A store cannot be reached, or refused an operation."""


class UnknownStoreScheme(StoreError, ValueError):
    """A store URL with a scheme no store backend handles."""


class BundleNotFound(SatchelError, LookupError):
    """No bundle matches a reference."""


class EnvironmentNotFound(SatchelError, LookupError):
    """No named environment, version or tag of that name in the store."""


class BlobNotFound(StoreError, LookupError):
    """A blob a bundle points at is missing from the store."""


class BlobCorrupted(StoreError):
    """A blob whose bytes do not match its sha256; `actual` is what they hash to, when known."""

    def __init__(self, message: str, actual: str | None = None) -> None:
        super().__init__(message)
        self.actual = actual


class BundleFormatError(SatchelError):
    """A metadata document that is not a bundle this version of Satchel can read."""


class UnsafeArchive(SatchelError):
    """An archive entry that would land outside its destination."""


# --- calling -----------------------------------------------------------------------------------


class ArgumentError(SatchelError, TypeError):
    """Arguments that do not match the function's schema; raised before anything is sent."""


class RemoteError(SatchelError):
    """The function raised in its worker. Carries the remote type name, message and traceback."""

    def __init__(self, type_name: str, message: str, traceback: str = "") -> None:
        self.type_name = type_name
        self.message = message
        self.remote_traceback = traceback
        super().__init__(f"{type_name}: {message}")

    def __str__(self) -> str:
        text = f"{self.type_name}: {self.message}"
        if self.remote_traceback:
            text += "\n\nRemote traceback:\n" + self.remote_traceback.rstrip()
        return text

    def __reduce__(self):  # keep all three fields when pickled
        return (type(self), (self.type_name, self.message, self.remote_traceback))


class BadResult(RemoteError):
    """The function returned, but a value its return annotation does not allow: the result, not the
    arguments, is at fault. `message` says where it does not fit ("return value: expected float, ...")."""


class WorkerError(SatchelError):
    """Base class of worker-lifecycle failures."""


class WorkerStartupError(WorkerError):
    """The worker could not start (its environment is broken, or the code failed to import)."""


class EscapeImportError(WorkerStartupError, ImportError):
    """`satchel.escape("module:function")` names what the caller's own (base) environment cannot import."""


class WorkerCrashed(WorkerError):
    """The worker died during a call. Carries its exit status and the tail of its stderr."""

    def __init__(self, message: str, exit_status: int | None = None, stderr_tail: str = "") -> None:
        self.exit_status = exit_status
        self.stderr_tail = stderr_tail
        super().__init__(message)

    def __str__(self) -> str:
        text = super().__str__()
        if self.stderr_tail:
            text += "\n\nLast lines of the worker's stderr:\n" + self.stderr_tail.rstrip()
        return text

    def __reduce__(self):
        return (type(self), (self.args[0], self.exit_status, self.stderr_tail))


class CallTimeout(WorkerError, TimeoutError):
    """A call did not finish within its `timeout=`, raised at the deadline. The message says whether it
    never started (it waited for a worker, or its deadline had passed when the worker got it) or was
    cancelled in its worker: Python code stops and the worker stays up; a worker still busy
    `cancel_grace` seconds later is killed and replaced in the background (logged, with its cause).
    """


class Overloaded(SatchelError):
    """A loaded function's queue of calls waiting for a free worker is full (`max_pending`)."""


class FunctionClosed(SatchelError):
    """The loaded function was closed."""


class ProtocolError(SatchelError):
    """A malformed message on the wire."""


class TransportClosed(SatchelError, EOFError):
    """The peer closed the transport (or died)."""


class TransportTimeout(SatchelError, TimeoutError):
    """No message arrived within the timeout."""


class UnknownBundle(BundleNotFound, ImportError):
    """No bundle of that name in the default store, imported from `satchel.bundles`: an ImportError, so
    that `from satchel.bundles import x` shows this message rather than Python's own."""

    def __init__(self, message: str, name: str) -> None:
        super().__init__(message)
        self.name = name  # ImportError's: the name that was not found
