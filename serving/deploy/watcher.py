"""The server side of deployments: serve each watched name's stable version, audit and promote candidates.

One thread per server polls the registry. For each watched name it
- serves the stable version (loaded when it changes: a promotion elsewhere, `promote`, `rollback`);
- claims a new candidate (exclusive: one server of many decides), loads it, runs its audits against the
  loaded proxy, and if every audit passes swaps it in and records `promoted`; otherwise records
  `audit_failed` with the reasons, closes the candidate and keeps the old version serving.

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

from satchel.errors import SatchelError
from satchel.packager.stores import Store
from satchel.runtime.proxy import LoadedFunction

from ..hosted import HostedFunction
from ..hosting import Hosting
from . import registry as reg
from .audits import run_audits

log = logging.getLogger("satchel.serving.deployments")

DEFAULT_POLL_INTERVAL = 2.0
#: How long a replaced version stays open for requests that looked it up just before the swap (and may
#: still be reading their bodies), before its waiting calls are drained and it is closed.
RETIRE_GRACE = 5.0
#: How long a replaced version may keep calls waiting for a worker before it is closed anyway.
DRAIN_SECONDS = 30.0
#: How long one audit may run before it counts as failed (the candidate is then closed).
AUDIT_TIMEOUT = 600.0

Loader = Callable[[str], LoadedFunction]


class DeploymentWatcher:
    """Watches `names` in the registry of `store` on behalf of `hosting` (registered in its services)."""

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
    ) -> None:
        self.names = [reg.check_deployment_name(n) for n in names]
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"deployments {self.names}: a name is given twice")
        for name in self.names:
            if name in hosting.functions:
                raise ValueError(f"deployment {name!r} clashes with a function of that name served already")
        if not poll_interval > 0:
            raise ValueError(f"poll_interval must be a positive number of seconds, not {poll_interval!r}")
        self.hosting = hosting
        self.registry = reg.Registry(store)
        self.poll_interval = float(poll_interval)
        self.audit_timeout = float(audit_timeout)
        self.retire_grace = float(retire_grace)
        self.identity = f"server pid {os.getpid()} on {socket.gethostname()}"
        self._load = load
        self._served: dict[str, str] = {}  # name -> ref served now
        self._owned: dict[str, LoadedFunction] = {}
        self._retiring: list[threading.Thread] = []  # closing replaced versions once their calls end
        self._handled: set[tuple[str, int]] = set()
        self._bad_stable: dict[str, str] = {}  # name -> stable ref that failed to load (not retried)
        #: name -> what went wrong last (a stable version that would not load, an unreadable registry).
        self.problems: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

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
        self._thread = threading.Thread(target=self._run, name="satchel-deployments", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop polling (an audit under way finishes first), then close every version loaded here."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self.hosting.lock:
            for name in self.names:
                hosted = self.hosting.functions.get(name)
                if hosted is not None and hosted.fn is self._owned.get(name):
                    del self.hosting.functions[name]
        for fn in self._owned.values():
            fn.close()
        self._owned.clear()
        for thread in self._retiring:
            thread.join()

    def _load_stable(self, name: str, ref: str) -> LoadedFunction:
        try:
            return self._load(ref)
        except SatchelError as exc:
            raise SatchelError(f"deployment {name!r}: cannot load its stable version {ref}: {exc}") from exc

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll()
            self._stop.wait(self.poll_interval)

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
        state = self.registry.state(name)
        stable = state.stable
        if stable is not None and stable != self._served.get(name) and stable != self._bad_stable.get(name):
            try:
                fn = self._load(stable)
            except Exception as exc:  # noqa: BLE001
                self._bad_stable[name] = stable
                self.problems[name] = f"cannot load the stable version {stable}: {exc}"
                log.error("deployment %s: %s; still serving the old one", name, self.problems[name])
            else:
                self._swap(name, stable, fn)
                log.info("deployment %s: now serving %s", name, reg.short_ref(stable))
        candidate = state.candidate
        if candidate is None or (name, candidate.seq) in self._handled:
            return
        self._handled.add((name, candidate.seq))
        if self.registry.claim(name, candidate.seq, by=self.identity):
            self._audit(name, candidate)

    def _audit(self, name: str, candidate: reg.Candidate) -> None:
        short = reg.short_ref(candidate.ref)
        try:
            fn = self._load(candidate.ref)
        except Exception as exc:  # noqa: BLE001
            self._record(name, reg.AUDIT_FAILED, candidate, [f"cannot load {short}: {exc}"])
            return
        results = run_audits(candidate.audits, fn, timeout=self.audit_timeout)
        failed = [r.line() for r in results if not r.passed]
        if failed:
            fn.close()
            self._record(name, reg.AUDIT_FAILED, candidate, failed)
            log.warning("deployment %s: %s failed its audits: %s", name, short, "; ".join(failed))
            return
        self._record(name, reg.AUDIT_PASSED, candidate, [r.line() for r in results])
        self._swap(name, candidate.ref, fn)  # before recording, so a promotion seen is one served
        self._record(name, reg.PROMOTED, candidate, [])
        log.info("deployment %s: promoted %s", name, short)

    def _record(self, name: str, kind: str, candidate: reg.Candidate, reasons: list[str]) -> None:
        self.registry.append(
            name, kind, ref=candidate.ref, target=candidate.seq, reasons=reasons, by=self.identity
        )

    # -- swapping -----------------------------------------------------------------------------------

    def _swap(self, name: str, ref: str, fn: LoadedFunction) -> None:
        hosted = HostedFunction.of(name, fn)
        with self.hosting.lock:
            self.hosting.functions[name] = hosted
        old = self._owned.get(name)
        self._owned[name] = fn
        self._served[name] = ref
        self._bad_stable.pop(name, None)
        self.problems.pop(name, None)
        if old is not None and old is not fn:
            self._retire(old)

    def _retire(self, fn: LoadedFunction) -> None:
        """Close a replaced version in the background: calls running on it finish there first."""
        self._retiring = [t for t in self._retiring if t.is_alive()]
        thread = threading.Thread(
            target=_drain_and_close,
            args=(fn, self.retire_grace, self._stop),
            name="satchel-retire",
            daemon=True,
        )
        thread.start()
        self._retiring.append(thread)


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
    `options`: audit_timeout, retire_grace (see DeploymentWatcher)."""
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
