"""Audits: checks a candidate must pass before it serves traffic.

An audit is a function of one argument, a callable handle to the candidate (the loaded proxy), that
returns True/False, or (passed, reason), or raises (a failure, with the exception as its reason).
Audits travel as import references, `module:qualname`, and the server imports them: they must live at
the top level of a module importable by the server (its working directory or its installed packages).
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from satchel.core.errors import SatchelError

_REFERENCE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")

Audit = Callable[[Any], Any]


class AuditError(SatchelError, ValueError):
    """An audit that cannot be recorded or imported."""


@dataclass(frozen=True)
class AuditResult:
    audit: str
    passed: bool
    reason: str

    def line(self) -> str:
        return f"{self.audit}: {self.reason}"


def audit_reference(audit: Audit | str) -> str:
    """The `module:qualname` the server will import for `audit` (a top-level function, or such a string)."""
    if isinstance(audit, str):
        if not _REFERENCE.match(audit):
            raise AuditError(
                f"audit {audit!r}: expected an import reference MODULE:NAME, e.g. checks:accuracy"
            )
        return audit
    if not callable(audit):
        raise AuditError(f"audit {audit!r}: expected a function or a 'module:name' string")
    module = getattr(audit, "__module__", None)
    qualname = getattr(audit, "__qualname__", None) or getattr(audit, "__name__", None)
    label = qualname or repr(audit)
    if not module or not qualname:
        raise AuditError(f"audit {label}: cannot tell which module defines it; give 'module:name' instead")
    if "<lambda>" in qualname:
        raise AuditError(
            f"audit {label} is a lambda: servers import audits by name, so define it with `def` at the top "
            "level of an importable module"
        )
    if "<locals>" in qualname:
        raise AuditError(
            f"audit {label} is defined inside a function (a closure): servers import audits by name, so "
            f"move it to the top level of module {module!r}"
        )
    if module == "__main__":
        raise AuditError(
            f"audit {qualname} is defined in __main__ (a script or notebook): servers import audits by "
            "name, so move it to a module importable by the server (its working directory or installed "
            "packages)"
        )
    reference = f"{module}:{qualname}"
    try:
        found = import_audit(reference)
    except AuditError as exc:
        raise AuditError(f"audit {qualname} is not importable as {reference}: {exc}") from None
    if found is not audit and getattr(found, "__wrapped__", None) is not audit:
        raise AuditError(f"audit {qualname}: {reference} names a different object than the one given")
    return reference


def audit_references(audits: Iterable[Audit | str] | Audit | str | None) -> tuple[str, ...]:
    if audits is None:
        return ()
    if isinstance(audits, str) or callable(audits):
        audits = [audits]
    return tuple(audit_reference(a) for a in audits)


def import_audit(reference: str) -> Audit:
    """Import `module:qualname` (the working directory is searched too); AuditError saying what failed."""
    module_name, _, qualname = audit_reference(reference).partition(":")
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any import failure is the audit's
        raise AuditError(f"cannot import module {module_name!r}: {type(exc).__name__}: {exc}") from None
    for part in qualname.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AuditError(f"module {module_name!r} has no attribute {qualname!r}") from None
    if not callable(obj):
        raise AuditError(f"{reference} is not callable")
    return obj


def normalise(reference: str, value: Any) -> AuditResult:
    """An audit's return value as a result: True/False, or (passed, reason)."""
    if isinstance(value, tuple) and len(value) == 2 and _is_bool(value[0]):
        passed, reason = bool(value[0]), value[1]
        return AuditResult(reference, passed, str(reason) if reason else ("passed" if passed else "failed"))
    if _is_bool(value):
        return AuditResult(reference, bool(value), "passed" if value else "returned False")
    return AuditResult(
        reference,
        False,
        f"returned {value!r:.200}; an audit returns True/False or (passed, reason), or raises",
    )


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool) or type(value).__name__ == "bool_"  # numpy.bool_


def run_audit(reference: str, candidate: Any, timeout: float | None = None) -> AuditResult:
    """Import and run one audit against `candidate`; every failure becomes a failed result, and so does
    an audit still running after `timeout` seconds (it is left to finish in its thread)."""
    if timeout is None:
        return _run(reference, candidate)
    box: list[AuditResult] = []
    thread = threading.Thread(
        target=lambda: box.append(_run(reference, candidate)), name=f"audit {reference}", daemon=True
    )
    thread.start()
    thread.join(timeout)
    if not box:
        return AuditResult(reference, False, f"did not finish within {timeout:g}s")
    return box[0]


def _run(reference: str, candidate: Any) -> AuditResult:
    try:
        audit = import_audit(reference)
    except AuditError as exc:
        return AuditResult(reference, False, str(exc))
    try:
        value = audit(candidate)
    except Exception as exc:  # noqa: BLE001 - an audit raising is a failed audit
        return AuditResult(reference, False, f"raised {type(exc).__name__}: {exc}")
    return normalise(reference, value)


def run_audits(references: Iterable[str], candidate: Any, timeout: float | None = None) -> list[AuditResult]:
    """Every audit, in order (all run, so the record names every failure); `timeout` is per audit."""
    return [run_audit(reference, candidate, timeout) for reference in references]
