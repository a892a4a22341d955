"""`satchel.deploy(ref, name=..., audits=[...], wait=60)` and the registry operations users call.

No server code is imported here: a flow step or a notebook deploys with only the core install.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from satchel.core.errors import SatchelError
from satchel.packager.refs import BundleRef

from . import registry as reg
from .audits import Audit, audit_references

POLL_SECONDS = 0.1


class DeploymentFailed(SatchelError):
    """A deployment was not promoted: an audit failed (or raised), or a newer deployment superseded it."""

    def __init__(self, message: str, outcome: DeploymentOutcome) -> None:
        super().__init__(message)
        self.outcome = outcome


class DeploymentTimeout(SatchelError, TimeoutError):
    """No outcome was recorded within `wait` seconds."""


@dataclass(frozen=True)
class DeploymentOutcome:
    """What became of a deployment: `promoted` is None while no server has decided."""

    name: str
    ref: str
    seq: int
    promoted: bool | None
    reasons: list[str] = field(default_factory=list)
    store: str = ""

    def __str__(self) -> str:
        state = {None: "pending", True: "promoted", False: "not promoted"}[self.promoted]
        tail = ": " + "; ".join(self.reasons) if self.reasons else ""
        return f"deployment #{self.seq} of {reg.short_ref(self.ref)} to {self.name}: {state}{tail}"


def deploy(
    ref: Any,
    name: str | None = None,
    *,
    audits: Iterable[Audit | str] | Audit | str | None = None,
    wait: float | None = None,
    store: str | None = None,
) -> DeploymentOutcome:
    """Make the bundle `ref` the candidate of deployment `name` (default: the bundle's name).

    A server watching `name` (`satchel serve --deployment NAME`) loads the candidate, runs each audit
    against it and promotes it only if all pass. `audits`: top-level functions of importable modules (or
    'module:name' strings): the server imports them by name. `store`: where the registry lives (default:
    the bundle's store). With `wait` (seconds), return the outcome once recorded, raise DeploymentFailed
    with the audits' reasons, or DeploymentTimeout; with None return at once (`promoted` is None).
    """
    from satchel.packager.bundle import read_bundle

    if wait is not None and not wait >= 0:
        raise ValueError(f"wait must be a number of seconds >= 0 or None, not {wait!r}")
    if name is not None:
        reg.check_deployment_name(name)
    references = audit_references(audits)
    if hasattr(ref, "ref") and not isinstance(ref, (str, BundleRef)):  # a LoadedFunction
        ref = ref.ref
    bundle, bundle_store = read_bundle(ref)  # pins the version and the metadata digest
    name = reg.check_deployment_name(name if name is not None else bundle.ref.name)
    registry = reg.Registry(store if store is not None else bundle_store)
    event = registry.deploy(name, str(bundle.ref), references)
    outcome = DeploymentOutcome(name, str(bundle.ref), event.seq, None, [], registry.store.url)
    if wait is None:
        return outcome
    return wait_for_outcome(name, event.seq, wait, store=registry.store)


def outcome_of(name: str, seq: int, *, store: Any = None) -> DeploymentOutcome:
    """The outcome of deployment #seq of `name` so far (`promoted` None while undecided)."""
    registry = store if isinstance(store, reg.Registry) else reg.Registry(store)
    return _outcome(registry, registry.state(name), seq)


def _outcome(registry: reg.Registry, state: reg.DeploymentState, seq: int) -> DeploymentOutcome:
    deployed = next((e for e in state.events if e.seq == seq and e.kind == reg.DEPLOYED), None)
    if deployed is None:
        raise ValueError(f"deployment {state.name!r} has no deployment #{seq} in {registry.store.url}")
    decision = state.decisions.get(seq)
    promoted = None if decision is None else decision.kind == reg.PROMOTED
    reasons = list(decision.reasons) if decision is not None else []
    return DeploymentOutcome(state.name, deployed.ref or "", seq, promoted, reasons, registry.store.url)


def wait_for_outcome(name: str, seq: int, wait: float, *, store: Any = None) -> DeploymentOutcome:
    """Poll the registry until deployment #seq of `name` is decided: the outcome if promoted;
    DeploymentFailed if not; DeploymentTimeout after `wait` seconds."""
    registry = reg.Registry(store)
    deadline = time.monotonic() + wait
    while True:
        outcome = _outcome(registry, registry.state(name), seq)
        if outcome.promoted is True:
            return outcome
        if outcome.promoted is False:
            raise DeploymentFailed(f"{outcome}", outcome)
        if time.monotonic() >= deadline:
            raise DeploymentTimeout(_timeout_message(registry, name, seq, wait))
        time.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))


def _timeout_message(registry: reg.Registry, name: str, seq: int, wait: float) -> str:
    claim = registry.claimant(name, seq)
    if claim is None:
        return (
            f"no outcome for deployment #{seq} of {name!r} after {wait:g}s: no server seems to be watching "
            f"deployment {name!r} in {registry.store.url} (start one with `satchel serve --deployment "
            f"{name}`); the candidate stays recorded and a server started later will audit it"
        )
    if claim.running() is False:
        return (
            f"no outcome for deployment #{seq} of {name!r} after {wait:g}s: {claim.by} took it at "
            f"{reg.short_time(claim.at)} and is no longer running; a server watching {name!r} takes it over"
        )
    return (
        f"no outcome for deployment #{seq} of {name!r} after {wait:g}s: {claim.by} took it at "
        f"{reg.short_time(claim.at)} and is still loading or auditing it (heartbeat "
        f"{reg.short_time(claim.renewed)})"
    )


def deployments(store: str | None = None) -> list[reg.DeploymentState]:
    """The state of every deployment in `store` (default: SATCHEL_STORE)."""
    registry = reg.Registry(store)
    return [registry.state(name) for name in registry.names()]


def promote(name: str, version: Any = None, *, store: str | None = None) -> reg.Event:
    """Make the candidate of `name` (or the bundle `version`) stable now, without audits."""
    registry = reg.Registry(store)
    ref = None
    if version is not None:
        from satchel.packager.bundle import read_bundle

        ref = str(read_bundle(BundleRef.parse(version, default_store=registry.store.url))[0].ref)
    return registry.promote(reg.check_deployment_name(name), ref)


def rollback(name: str, *, store: str | None = None) -> reg.Event:
    """Make the previous version of `name` stable again (watching servers switch to it)."""
    return reg.Registry(store).rollback(reg.check_deployment_name(name))
