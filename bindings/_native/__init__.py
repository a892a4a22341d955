"""The native ring library (`native/satchelring.c`), found or built, and loaded through ctypes.

ctypes (ABI mode) and a plain C shared object with no Python C-API: the same `libsatchelring.so`
serves every Python version, the caller's and any worker's. Where the library comes from, in order:

1. `$SATCHEL_RING_LIBRARY`, if set (a path to a library you built yourself);
2. `libsatchelring.so` beside this file: put there by the package's build (`setup.py`), or copied into
   a worker kit. It is used only if it was built from the C source shipped beside it (the build embeds
   the source's hash), so an edited source never runs against a stale library;
3. `$SATCHEL_HOME/native/<source-hash>/libsatchelring.so`, compiled from the shipped C source with the
   system C compiler (`$CC`, else `cc`) the first time it is needed, under a file lock, written aside
   and renamed into place.

The C source is found in `src/` beside this file (installed packages, worker kits) or in the
repository's `native/` (editable installs). Imports only the standard library: workers run it on any
Python from 3.9 on.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shlex
import subprocess
import sys
import threading
from pathlib import Path

__all__ = [
    "ABI_VERSION",
    "LIBRARY_NAME",
    "SOURCES",
    "NativeUnavailable",
    "source_dir",
    "source_hash",
    "compile_library",
    "library_path",
    "load",
    "available",
    "unavailable_reason",
]

ABI_VERSION = 1
LIBRARY_NAME = "libsatchelring.so"
SOURCES = ("satchelring.c", "satchelring.h")
HERE = Path(__file__).resolve().parent


class NativeUnavailable(OSError):
    """The ring library cannot be found, built or loaded here (the pipe transport still works)."""


def source_dir() -> Path | None:
    """Where the C source is: `src/` beside this file, else the repository's `native/`."""
    for candidate in (HERE / "src", HERE.parents[1] / "native"):
        if all((candidate / name).is_file() for name in SOURCES):
            return candidate
    return None


def source_hash(directory: Path) -> str:
    """16 hex digits identifying the C source (names and bytes of SOURCES)."""
    digest = hashlib.sha256()
    for name in SOURCES:
        digest.update(name.encode() + b"\0" + (directory / name).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def compile_library(src: Path, out: Path) -> Path:
    """Compile the C source in `src` into the shared library `out` (atomically: written aside, renamed)."""
    digest = source_hash(src)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    cc = shlex.split(os.environ.get("CC") or "cc")
    base = [
        *cc,
        "-O2",
        "-std=c11",
        "-shared",
        "-fPIC",
        "-Wall",
        f'-DSR_SOURCE_HASH="{digest}"',
        "-o",
        str(tmp),
        str(src / "satchelring.c"),
    ]
    errors = []
    try:
        for extra in (["-lrt"], []):  # shm_open lives in librt before glibc 2.34
            try:
                proc = subprocess.run([*base, *extra], capture_output=True, text=True, timeout=120)
            except (OSError, subprocess.SubprocessError) as exc:
                raise NativeUnavailable(f"cannot run the C compiler {cc[0]!r}: {exc}") from None
            if proc.returncode == 0:
                os.chmod(tmp, 0o755)
                os.replace(tmp, out)
                return out
            errors.append(proc.stderr.strip())
        raise NativeUnavailable(f"compiling {src / 'satchelring.c'} failed:\n{errors[-1]}")
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def _embeds(path: Path, digest: str) -> bool:
    try:
        return digest.encode() in path.read_bytes()
    except OSError:
        return False


def _settings():
    # Imported when first needed: setup.py loads this file on its own (no satchel package) to compile.
    from satchel.core import settings

    return settings


def _build_cached(src: Path, digest: str) -> Path:
    import fcntl

    directory = _settings().home() / "native" / digest
    target = directory / LIBRARY_NAME
    if target.is_file():
        return target
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not target.is_file():  # someone else may have built it while we waited
            compile_library(src, target)
    return target


def library_path(build: bool = True) -> Path:
    """The library to load, compiling it into SATCHEL_HOME if needed (and `build`)."""
    explicit = _settings().raw("SATCHEL_RING_LIBRARY")
    if explicit:
        return Path(explicit)
    if not sys.platform.startswith("linux"):
        raise NativeUnavailable(f"the shared-memory ring needs Linux (futex); this is {sys.platform}")
    src = source_dir()
    shipped = HERE / LIBRARY_NAME
    if src is None:
        if shipped.is_file():
            return shipped
        raise NativeUnavailable(f"neither {shipped} nor the C source ({', '.join(SOURCES)}) is present")
    digest = source_hash(src)
    if shipped.is_file() and _embeds(shipped, digest):
        return shipped
    cached = _settings().home() / "native" / digest / LIBRARY_NAME
    if cached.is_file() or not build:
        if cached.is_file():
            return cached
        raise NativeUnavailable(f"no library built from the C source {digest} yet")
    return _build_cached(src, digest)


class RingInfo(ctypes.Structure):
    """sr_info_get's struct: a ring's geometry and both ends' pids, flags and states (ring.py reads it)."""

    _fields_ = [
        ("capacity", ctypes.c_uint64),
        ("segment_size", ctypes.c_uint64),
        ("side", ctypes.c_int32),
        ("creator_pid", ctypes.c_int32),
        ("attacher_pid", ctypes.c_int32),
        ("creator_flags", ctypes.c_uint32),
        ("attacher_flags", ctypes.c_uint32),
        ("creator_state", ctypes.c_uint32),
        ("attacher_state", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32),
    ]


class RingStats(ctypes.Structure):
    """sr_stats_get's struct: how often this end waited, spun and slept (ring.py reads it)."""

    _fields_ = [(name, ctypes.c_uint64) for name in ("waits", "spins", "spin_successes", "sleeps", "wakes")]


class SpinState(ctypes.Structure):
    """sr_spin_state: the adaptive spin's state machine (one per ring handle and direction)."""

    _fields_ = [
        ("backoff", ctypes.c_uint32),
        ("skip", ctypes.c_uint32),
        ("budget_ns", ctypes.c_int64),
        ("typical_ns", ctypes.c_int64),
    ]


class Part(ctypes.Structure):
    _fields_ = [("ptr", ctypes.c_void_p), ("len", ctypes.c_uint64)]


def _declare(lib: ctypes.CDLL) -> None:
    vp, u64, i64, i32, u32 = ctypes.c_void_p, ctypes.c_uint64, ctypes.c_int64, ctypes.c_int32, ctypes.c_uint32
    c_int = ctypes.c_int
    table = {
        "sr_abi_version": (c_int, []),
        "sr_source_hash": (ctypes.c_char_p, []),
        "sr_strerror": (ctypes.c_char_p, [c_int]),
        "sr_last_errno": (c_int, []),
        "sr_create": (c_int, [ctypes.c_char_p, u64, c_int, u32, ctypes.POINTER(vp)]),
        "sr_attach": (c_int, [ctypes.c_char_p, u32, ctypes.POINTER(vp)]),
        "sr_name": (ctypes.c_char_p, [vp]),
        "sr_segment": (vp, [vp]),
        "sr_info_get": (c_int, [vp, ctypes.POINTER(RingInfo)]),
        "sr_stats_get": (c_int, [vp, ctypes.POINTER(RingStats)]),
        "sr_send": (c_int, [vp, ctypes.POINTER(Part), u32, i64]),
        "sr_send2": (c_int, [vp, vp, u64, vp, u64, i64]),
        "sr_recv": (c_int, [vp, vp, u64, ctypes.POINTER(u64), i64]),
        "sr_recv_into": (c_int, [vp, vp, i64]),
        "sr_recv_progress": (u64, [vp]),
        "sr_recv_started": (c_int, [vp]),
        "sr_shutdown": (None, [vp]),
        "sr_close": (None, [vp]),
        "sr_pid_gone": (c_int, [i32]),
        "sr_advise_buffer": (None, [vp, u64]),
        "sr_set_spin_ns": (None, [i64]),
        "sr_get_spin_ns": (i64, []),
        "sr_wake_ns": (i64, []),
        "sr_probe_wake_ns": (i64, []),
        "sr_spin_budget_ns": (i64, []),
        "sr_spin_plan": (i64, [ctypes.POINTER(SpinState), i64, i64]),
        "sr_spin_learn": (None, [ctypes.POINTER(SpinState), i64, i64, c_int, c_int, i64]),
    }
    for name, (restype, argtypes) in table.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes


_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_error: NativeUnavailable | None = None


def load() -> ctypes.CDLL:
    """The loaded library (found or built once per process). Raises NativeUnavailable."""
    global _lib, _error
    if _lib is not None:
        return _lib
    with _lock:
        if _lib is not None:
            return _lib
        if _error is not None:
            raise _error
        try:
            path = library_path()
            try:
                lib = ctypes.CDLL(str(path))
                _declare(lib)
            except (OSError, AttributeError) as exc:
                raise NativeUnavailable(f"cannot load {path}: {exc}") from None
            if lib.sr_abi_version() != ABI_VERSION:
                raise NativeUnavailable(
                    f"{path} has ABI version {lib.sr_abi_version()}, this Satchel needs {ABI_VERSION}"
                )
        except NativeUnavailable as exc:
            _error = exc
            raise
        lib.path = path  # type: ignore[attr-defined]
        _lib = lib
        return lib


def available() -> bool:
    try:
        load()
    except NativeUnavailable:
        return False
    return True


def unavailable_reason() -> str | None:
    try:
        load()
    except NativeUnavailable as exc:
        return str(exc)
    return None
