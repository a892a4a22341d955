"""The server side of deployments: serve each watched name's stable version, audit and promote candidates.

A polling thread keeps every watched name up to date with the registry:
- it serves the stable version (loaded when it changes: a promotion elsewhere, `promote`, `rollback`);
- it claims a name's newest undecided candidate (exclusive: one server of many audits it) and audits it in a
  thread of that name, so a slow audit holds up no other name: load the candidate, run its audits against
  the loaded proxy, and if every audit passes swap it in and record `promoted`; otherwise record
  `audit_failed` with the reasons, close the candidate and keep the old version serving;
- it takes over a candidate whose claim lapsed: its holder's process is gone (seen for sure on the same
  machine) or, on another machine, its heartbeat stopped for the claim's lease. A heartbeat thread renews the
  claims held here. Should the old holder only have been slow, both decide, but the registry keeps exactly
  one decision (an exclusive create): the loser closes its candidate and follows the recorded outcome.
- Older undecided candidates (a newer one was deployed while they waited) are recorded as superseded.

A swap replaces the entry in `hosting.functions` (gateways look it up per request); the old version is
closed in the background once no call waits for it, and calls running on it finish there.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable

from satchel.core.errors import SatchelError
from satchel.packager.stores import Store
from satchel.runtime.proxy import LoadedFunction

from ..hosted import HostedFunction
from ..hosting import Hosting
from ..options import DEFAULT_POLL_INTERVAL
from . import registry as reg
from .audits import run_audits

log = logging.getLogger("satchel.serving.deployments")

#: How long a replaced version stays open for requests that looked it up just before the swap (and may
#: still be reading their bodies), before its waiting calls are drained and it is closed.
RETIRE_GRACE = 5.0
#: How long a replaced version may keep calls waiting for a worker before it is closed anyway.
DRAIN_SECONDS = 30.0
#: How long one audit may run before it counts as failed (the candidate is then closed).
AUDIT_TIMEOUT = 600.0

Loader = Callable[[str], LoadedFunction]


class DeploymentWatcher:
    """Watches `names` in the registry of `store` on behalf of `hosting` (registered in its services).
    `claim_lease`: seconds without a heartbeat after which a server on another machine takes over a claim."""

    def __init__(
        self,
        hosting: Hosting,
        names: Iterable[str],
        *,
        load: Loader,
        store: Store | str | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        audit_timeout: float = AUDIT_TIMEOUT,
        retire_grace: float = RETIRE_GRACE,
        claim_lease: float = reg.DEFAULT_LEASE,
    ) -> None:
        self.names = [reg.check_deployment_name(n) for n in names]
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"deployments {self.names}: a name is given twice")
        for name in self.names:
            if name in hosting.functions:
                raise ValueError(f"deployment {name!r} clashes with a function of that name served already")
        if not poll_interval > 0:
            raise ValueError(f"poll_interval must be a positive number of seconds, not {poll_interval!r}")
        if not claim_lease > 0:
            raise ValueError(f"claim_lease must be a positive number of seconds, not {claim_lease!r}")
        self.hosting = hosting
        self.registry = reg.Registry(store)
        self.poll_interval = float(poll_interval)
        self.audit_timeout = float(audit_timeout)
        self.retire_grace = float(retire_grace)
        self.claim_lease = float(claim_lease)
        self.identity = f"server pid {os.getpid()} on {socket.gethostname()}"
        self._load = load
        self._lock = threading.Lock()  # the versions served and owned here
        #: name -> held while reading its stable version and swapping it, or recording a decision about it.
        self._name_locks = {name: threading.Lock() for name in self.names}
        self._served: dict[str, str] = {}  # name -> ref served now
        self._owned: dict[str, LoadedFunction] = {}
        self._retiring: list[threading.Thread] = []  # closing replaced versions once their calls end
        self._audits: dict[str, threading.Thread] = {}  # name -> its audit in flight
        self._claims: dict[tuple[str, int], reg.Claim] = {}  # claims held here, renewed by the heartbeat
        #: (name, seq, attempt) of claims held elsewhere -> (beat seen, when first seen with that beat).
        self._beats: dict[tuple[str, int, int], tuple[int, float]] = {}
        #: (name, seq) of decisions seen without their event -> when first seen.
        self._unrecorded: dict[tuple[str, int], float] = {}
        self._bad_stable: dict[str, str] = {}  # name -> stable ref that failed to load (not retried)
        #: name -> what went wrong last (a stable version that would not load, an unreadable registry).
        self.problems: dict[str, str] = {}
        self._stop = threading.Event()
        self._stop_beating = threading.Event()
        self._thread: threading.Thread | None = None
        self._heartbeat: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> DeploymentWatcher:
        """Serve each name's stable version now (raising if one cannot load), then poll in a thread."""
        try:
            for name in self.names:
                stable = self.registry.state(name).stable
                if stable is not None:
                    self._swap(name, stable, self._load_stable(name, stable))
        except BaseException:
            self.close()
            raise
        self._heartbeat = threading.Thread(
            target=self._beat, name="satchel-deployments-heartbeat", daemon=True
        )
        self._heartbeat.start()
        self._thread = threading.Thread(target=self._run, name="satchel-deployments", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop polling (audits under way finish and record their decision first), then close every version
        loaded here."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        for thread in list(self._audits.values()):
            thread.join()
        self._stop_beating.set()
        if self._heartbeat is not None:
            self._heartbeat.join()
        with self.hosting.lock:
            for name in self.names:
                hosted = self.hosting.functions.get(name)
                if hosted is not None and hosted.fn is self._owned.get(name):
                    del self.hosting.functions[name]
        with self._lock:
            owned, self._owned = list(self._owned.values()), {}
            retiring = list(self._retiring)
        for fn in owned:
            fn.close()
        for thread in retiring:
            thread.join()

    def auditing(self) -> dict[str, int]:
        """name -> the deployment seq whose audit runs here now."""
        with self._lock:
            return {key[0]: key[1] for key in self._claims}

    def _load_stable(self, name: str, ref: str) -> LoadedFunction:
        try:
            return self._load(ref)
        except SatchelError as exc:
            raise SatchelError(f"deployment {name!r}: cannot load its stable version {ref}: {exc}") from exc

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll()
            self._stop.wait(self.poll_interval)

    def _beat(self) -> None:
        """Renew the claims held here, three times per lease."""
        while not self._stop_beating.wait(self.claim_lease / 3):
            with self._lock:
                held = list(self._claims.items())
            for key, claim in held:
                try:
                    renewed = self.registry.renew(claim)
                except Exception:  # noqa: BLE001 - the next beat tries again
                    log.exception("deployment %s: could not renew the claim on #%d", claim.name, claim.seq)
                    continue
                with self._lock:
                    if key in self._claims:
                        self._claims[key] = renewed

    # -- one round ----------------------------------------------------------------------------------

    def poll(self) -> None:
        """Bring every watched name up to date with the registry (errors are logged, never raised)."""
        for name in self.names:
            if self._stop.is_set():
                return
            try:
                self._reconcile(name)
            except Exception as exc:  # noqa: BLE001 - one bad round must not stop the watcher
                self.problems[name] = f"could not read or apply the registry: {exc}"
                log.exception("deployment %s: could not read or apply the registry", name)

    def _reconcile(self, name: str) -> None:
        with self._name_locks[name]:
            state = self.registry.state(name)
            self._follow_stable(name, state.stable)
        pending = state.pending()
        self._forget_decided(name, {candidate.seq for candidate in pending})
        for candidate in pending:
            if self._stop.is_set():
                return
            newest = candidate is pending[-1]
            if newest and name in self._audits:
                return  # one audit per name at a time: the next one starts when it ends
            decision = self.registry.decision(name, candidate.seq)
            if decision is not None:
                self._record_if_orphaned(name, candidate, decision)
                continue
            claim = self._acquire(name, candidate)
            if claim is None:
                continue
            if not newest:
                self.registry.supersede(name, candidate, pending[-1].seq, by=self.identity)
                self._release(claim)
                continue
            thread = threading.Thread(
                target=self._audit, args=(name, candidate, claim), name=f"satchel-audit-{name}", daemon=True
            )
            self._audits[name] = thread
            thread.start()

    def _forget_decided(self, name: str, pending: set[int]) -> None:
        """Drop what was observed of claims and decisions of `name` that are no longer pending."""
        self._beats = {k: v for k, v in self._beats.items() if k[0] != name or k[1] in pending}
        self._unrecorded = {k: v for k, v in self._unrecorded.items() if k[0] != name or k[1] in pending}

    def _follow_stable(self, name: str, stable: str | None) -> None:
        if stable is None or stable == self._served.get(name) or stable == self._bad_stable.get(name):
            return
        try:
            fn = self._load(stable)
        except Exception as exc:  # noqa: BLE001
            self._bad_stable[name] = stable
            self.problems[name] = f"cannot load the stable version {stable}: {exc}"
            log.error("deployment %s: %s; still serving the old one", name, self.problems[name])
        else:
            self._swap(name, stable, fn)
            log.info("deployment %s: now serving %s", name, reg.short_ref(stable))

    # -- claims -------------------------------------------------------------------------------------

    def _acquire(self, name: str, candidate: reg.Candidate) -> reg.Claim | None:
        """A claim on `candidate` for this server: the first one, or the next attempt after a lapsed one."""
        current = self.registry.claimant(name, candidate.seq)
        attempt = 1 if current is None else current.attempt + 1
        if current is not None and not self._lapsed(current):
            return None
        claim = self.registry.claim(
            name, candidate.seq, by=self.identity, attempt=attempt, lease=self.claim_lease
        )
        if claim is None:
            return None
        if current is not None:
            log.warning(
                "deployment %s: taking over #%d from %s (%s)",
                name,
                candidate.seq,
                current.by,
                "no longer running" if current.running() is False else f"no heartbeat for {current.lease:g}s",
            )
        with self._lock:
            self._claims[(name, candidate.seq)] = claim
        return claim

    def _release(self, claim: reg.Claim) -> None:
        with self._lock:
            self._claims.pop((claim.name, claim.seq), None)

    def _lapsed(self, claim: reg.Claim) -> bool:
        """Whether `claim`'s holder is gone: for sure if it ran on this machine, else once its heartbeat
        has not changed for its lease (timed here, so no two clocks are compared)."""
        running = claim.running()
        if running is not None:
            return not running
        key = (claim.name, claim.seq, claim.attempt)
        seen = self._beats.get(key)
        moment = time.monotonic()
        if seen is None or seen[0] != claim.beat:
            self._beats[key] = (claim.beat, moment)
            return False
        return moment - seen[1] >= claim.lease

    def _record_if_orphaned(self, name: str, candidate: reg.Candidate, decision: reg.Event) -> None:
        """Record a decision whose maker died before logging it (its claim lapsed, or a lease went by)."""
        key = (name, candidate.seq)
        first = self._unrecorded.setdefault(key, time.monotonic())
        claim = self.registry.claimant(name, candidate.seq)
        gone = claim is not None and claim.running() is False
        if gone or time.monotonic() - first >= self.claim_lease:
            self.registry.record(name, decision)
            self._unrecorded.pop(key, None)
            log.warning(
                "deployment %s: recorded the decision on #%d its maker left unrecorded", name, candidate.seq
            )

    # -- auditing (a thread per name) ---------------------------------------------------------------

    def _audit(self, name: str, candidate: reg.Candidate, claim: reg.Claim) -> None:
        try:
            self._audit_and_decide(name, candidate)
        except Exception as exc:  # noqa: BLE001 - the claim lapses when this process ends; log it now
            self.problems[name] = f"could not audit #{candidate.seq}: {exc}"
            log.exception("deployment %s: could not audit #%d", name, candidate.seq)
        finally:
            self._release(claim)
            self._audits.pop(name, None)

    def _audit_and_decide(self, name: str, candidate: reg.Candidate) -> None:
        short = reg.short_ref(candidate.ref)
        try:
            fn = self._load(candidate.ref)
        except Exception as exc:  # noqa: BLE001
            self._decide(name, candidate, reg.AUDIT_FAILED, [f"cannot load {short}: {exc}"], None)
            return
        results = run_audits(candidate.audits, fn, timeout=self.audit_timeout)
        failed = [r.line() for r in results if not r.passed]
        if failed:
            self._decide(name, candidate, reg.AUDIT_FAILED, failed, fn)
        else:
            self._decide(name, candidate, reg.PROMOTED, [r.line() for r in results], fn)

    def _decide(
        self, name: str, candidate: reg.Candidate, kind: str, reasons: list[str], fn: LoadedFunction | None
    ) -> None:
        """Record this server's decision, unless another one was recorded first: then close the candidate
        and follow the recorded one (the stable version, read at the next poll)."""
        short = reg.short_ref(candidate.ref)
        with self._name_locks[name]:
            won, decision = self.registry.decide(
                name,
                kind,
                ref=candidate.ref,
                target=candidate.seq,
                reasons=reasons if kind == reg.AUDIT_FAILED else [],
                by=self.identity,
            )
            if not won:
                log.warning(
                    "deployment %s: #%d was decided elsewhere meanwhile (%s); following that decision",
                    name,
                    candidate.seq,
                    decision.describe(),
                )
            elif kind == reg.PROMOTED and fn is not None:
                self._record(name, reg.AUDIT_PASSED, candidate, reasons)
                self._swap(name, candidate.ref, fn)  # before recording, so a promotion seen is one served
                self.registry.record(name, decision)
                log.info("deployment %s: promoted %s", name, short)
                return
            else:
                self.registry.record(name, decision)
                log.warning("deployment %s: %s failed its audits: %s", name, short, "; ".join(reasons))
        if fn is not None:
            fn.close()

    def _record(self, name: str, kind: str, candidate: reg.Candidate, reasons: list[str]) -> None:
        self.registry.append(
            name, kind, ref=candidate.ref, target=candidate.seq, reasons=reasons, by=self.identity
        )

    # -- swapping -----------------------------------------------------------------------------------

    def _swap(self, name: str, ref: str, fn: LoadedFunction) -> None:
        hosted = HostedFunction.of(name, fn)
        with self.hosting.lock:
            self.hosting.functions[name] = hosted
        with self._lock:
            old = self._owned.get(name)
            self._owned[name] = fn
            self._served[name] = ref
        self._bad_stable.pop(name, None)
        self.problems.pop(name, None)
        if old is not None and old is not fn:
            self._retire(old)

    def _retire(self, fn: LoadedFunction) -> None:
        """Close a replaced version in the background: calls running on it finish there first."""
        thread = threading.Thread(
            target=_drain_and_close,
            args=(fn, self.retire_grace, self._stop),
            name="satchel-retire",
            daemon=True,
        )
        with self._lock:
            self._retiring = [t for t in self._retiring if t.is_alive()]
            self._retiring.append(thread)
        thread.start()


def _drain_and_close(fn: LoadedFunction, grace: float, stop: threading.Event) -> None:
    """After `grace` seconds (cut short by `stop`), close `fn` once no call waits for one of its workers;
    calls running on it finish during close()."""
    stop.wait(grace)
    deadline = time.monotonic() + DRAIN_SECONDS
    while fn.pending and time.monotonic() < deadline:
        time.sleep(0.01)  # polling a counter of the pool, which offers no wait
    fn.close()


def watch(
    hosting: Hosting,
    names: Iterable[str],
    *,
    load: Loader,
    store: Store | str | None = None,
    poll_interval: float = DEFAULT_POLL_INTERVAL,
    **options: float,
) -> DeploymentWatcher:
    """Start a watcher for `names` and register it in `hosting.services` (closed with the hosting).
    `options`: audit_timeout, retire_grace, claim_lease (see DeploymentWatcher)."""
    watcher = DeploymentWatcher(
        hosting, names, load=load, store=store, poll_interval=poll_interval, **options
    )
    watcher.start()
    hosting.services.append(watcher)
    return watcher


def watch_deployments(
    hosting: Hosting,
    names: Iterable[str],
    *,
    store: Store | str | None = None,
    poll_interval: float = DEFAULT_POLL_INTERVAL,
    workers: int | tuple[int, int] | str = 1,
    max_pending: int | None = None,
    **options: float,
) -> DeploymentWatcher:
    """`watch` with versions loaded the way the server loads its functions (same workers and transport)."""
    from ..server import load_all

    def load(ref: str) -> LoadedFunction:
        return next(iter(load_all([ref], workers=workers, max_pending=max_pending).values()))

    return watch(hosting, names, load=load, store=store, poll_interval=poll_interval, **options)
