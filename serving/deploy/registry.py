"""The deployment registry: an append-only log of events per deployment name, kept in a store.

    deployments/<name>/events/<seq>.json   one event each (deployed, audit_passed, audit_failed,
                                           superseded, promoted, rolled_back), seq = 1, 2, ...
    deployments/<name>/claims/<seq>/<attempt>.json
                                           who audits deployment #seq: attempt 1 is the first server (or a
                                           newer deploy superseding it); attempt n+1 takes over from a
                                           holder that died (its process is gone, or its lease lapsed)
    deployments/<name>/decisions/<seq>.json
                                           the one decision about deployment #seq

Events, claim attempts and decisions are created with the store's exclusive create, so concurrent writers
(threads, processes, hosts) never overwrite each other: a writer that loses a sequence number takes the next
one; of two servers deciding one deployment (a holder thought dead that was only slow, and the one that took
over) exactly one creates the decision document, records it as an event, and the other adopts it. Only the
holder of a claim rewrites it (its heartbeat). The state of a name (stable, previous, candidate) is a fold of
its events in order, the same for every reader:

- `deployed` makes the ref the candidate, to be audited by a watching server;
- a decision about a deployment (`promoted`, `audit_failed` or `superseded` naming it) is recorded once;
  should a second one reach the log anyway, the first wins and the later stays in the history only;
- `promoted` pushes its ref onto the stack of stable versions (stable = top, previous = the one below);
- `rolled_back` pops the stack, if the stable is still the one it rolled back from.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import socket
import threading
from dataclasses import dataclass, field
from typing import Any

from satchel.core import identity as holders
from satchel.core import settings
from satchel.packager.refs import check_name
from satchel.packager.stores import Store, open_store

PREFIX = "deployments/"
DEPLOYED = "deployed"
AUDIT_PASSED = "audit_passed"
AUDIT_FAILED = "audit_failed"
SUPERSEDED = "superseded"
PROMOTED = "promoted"
ROLLED_BACK = "rolled_back"
KINDS = (DEPLOYED, AUDIT_PASSED, AUDIT_FAILED, SUPERSEDED, PROMOTED, ROLLED_BACK)
DECISIONS = (PROMOTED, AUDIT_FAILED, SUPERSEDED)
_MAX_ATTEMPTS = 10_000
#: Seconds a claim stays valid without a heartbeat, for servers that cannot see whether its holder runs.
DEFAULT_LEASE = 30.0


class NothingToDo(ValueError):
    """A promote without a candidate, or a rollback without a previous version."""


def check_deployment_name(name: str) -> str:
    """`name` if it can name a deployment (the rules of bundle names); ValueError saying why not."""
    try:
        return check_name(name)
    except ValueError:
        raise ValueError(
            f"deployment name {name!r} is not valid: use letters, digits, '.', '_' and '-', starting with a "
            "letter or digit (at most 128 characters)"
        ) from None


def who() -> str:
    """`user@host` of this process (SATCHEL_USER overrides the user)."""
    return f"{settings.user()}@{socket.gethostname()}"


_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime(_TIME_FORMAT)


def short_ref(ref: str | None) -> str:
    """`churn:3` of `file:///store#churn:3@sha256:...` (empty for None)."""
    if not ref:
        return ""
    return ref.rpartition("#")[2].partition("@")[0]


def event_key(name: str, seq: int) -> str:
    return f"{PREFIX}{name}/events/{seq:012d}.json"


def claims_prefix(name: str, seq: int) -> str:
    return f"{PREFIX}{name}/claims/{seq:012d}/"


def claim_key(name: str, seq: int, attempt: int = 1) -> str:
    return f"{claims_prefix(name, seq)}{attempt:06d}.json"


def decision_key(name: str, seq: int) -> str:
    return f"{PREFIX}{name}/decisions/{seq:012d}.json"


def short_time(at: str) -> str:
    """`2026-11-26 10:01:02` of `2026-11-26T10:01:02.123456Z`."""
    return at[:19].replace("T", " ")


@dataclass(frozen=True)
class Claim:
    """Attempt `attempt` at deciding deployment #seq of `name`, held by the process `holder`."""

    name: str
    seq: int
    attempt: int
    by: str
    at: str
    #: When the holder last renewed it, and how many times (readers watch `beat` change).
    renewed: str
    beat: int
    #: Seconds without a new beat after which a server that cannot see the holder may take over.
    lease: float
    holder: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> bytes:
        keys = ("by", "at", "renewed", "beat", "lease", "holder")
        return json.dumps({key: getattr(self, key) for key in keys}, indent=1).encode()

    @classmethod
    def from_json(cls, name: str, seq: int, attempt: int, data: bytes) -> Claim:
        doc = json.loads(data)
        at = doc.get("at", "")
        return cls(
            name=name,
            seq=seq,
            attempt=attempt,
            by=doc.get("by", ""),
            at=at,
            renewed=doc.get("renewed", at),
            beat=int(doc.get("beat", 0)),
            lease=float(doc.get("lease", DEFAULT_LEASE)),
            holder=dict(doc.get("holder") or {}),
        )

    def running(self) -> bool | None:
        """Whether its holder still runs (None: it runs on another machine, so only its lease can tell)."""
        return holders.is_running(self.holder)

    def describe(self) -> str:
        """`auditing since 2026-11-26 10:01:02 by server pid 7 on h (heartbeat 10:01:30)`, or, if its holder
        is known to be gone, `undecided: claimed at ... by ..., no longer running (...)`."""
        attempt = f", attempt {self.attempt}" if self.attempt > 1 else ""
        if self.running() is False:
            return (
                f"undecided: claimed at {short_time(self.at)} by {self.by}, no longer running{attempt} "
                "(a server watching the name takes it over)"
            )
        beat = short_time(self.renewed)[11:]
        if self.silent_for() > self.lease:  # by this machine's clock: a hint for people, not for deciding
            return (
                f"undecided: claimed at {short_time(self.at)} by {self.by}, no heartbeat since {beat} "
                f"(lease {self.lease:g}s{attempt}; a server watching the name takes it over)"
            )
        return f"auditing since {short_time(self.at)} by {self.by} (heartbeat {beat}{attempt})"

    def silent_for(self) -> float:
        """Seconds since its last heartbeat, by this machine's clock (0 if the time cannot be read)."""
        try:
            renewed = _dt.datetime.strptime(self.renewed, _TIME_FORMAT).replace(tzinfo=_dt.timezone.utc)
        except ValueError:
            return 0.0
        return (_dt.datetime.now(_dt.timezone.utc) - renewed).total_seconds()


@dataclass(frozen=True)
class Event:
    """One entry of a deployment's history."""

    seq: int
    kind: str
    at: str
    by: str
    ref: str | None = None
    #: The deployment (`deployed` event seq) a decision or audit result is about.
    target: int | None = None
    #: Audit references (`module:qualname`) of a `deployed` event.
    audits: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    #: `rolled_back`: the stable version it rolled back from.
    previous: str | None = None

    def to_json(self) -> bytes:
        doc = {"kind": self.kind, "at": self.at, "by": self.by, "seq": self.seq}
        for key in ("ref", "target", "previous"):
            if getattr(self, key) is not None:
                doc[key] = getattr(self, key)
        if self.audits:
            doc["audits"] = list(self.audits)
        if self.reasons:
            doc["reasons"] = list(self.reasons)
        return json.dumps(doc, indent=1).encode()

    @classmethod
    def from_json(cls, seq: int, data: bytes) -> Event:
        doc = json.loads(data)
        return cls(
            seq=seq,
            kind=doc["kind"],
            at=doc.get("at", ""),
            by=doc.get("by", ""),
            ref=doc.get("ref"),
            target=doc.get("target"),
            audits=tuple(doc.get("audits", ())),
            reasons=tuple(doc.get("reasons", ())),
            previous=doc.get("previous"),
        )

    def describe(self, limit: int | None = None) -> str:
        """One line for people: `promoted churn:2 (#3) by server@host at 2026-...` (reasons cut at `limit`)."""
        what = self.kind.replace("_", " ")
        if self.ref:
            what += f" {short_ref(self.ref)}"
        if self.target is not None and self.kind != DEPLOYED:
            what += f" (#{self.target})"
        if self.reasons:
            reasons = "; ".join(self.reasons)
            if limit is not None and len(reasons) > limit:
                reasons = reasons[: max(0, limit - 1)] + "…"
            what += ": " + reasons
        return f"{what} by {self.by} at {short_time(self.at)}"


@dataclass(frozen=True)
class Candidate:
    seq: int
    ref: str
    audits: tuple[str, ...]


@dataclass
class DeploymentState:
    """A deployment name's versions, folded from its events."""

    name: str
    events: list[Event] = field(default_factory=list)
    stables: list[str] = field(default_factory=list)
    candidate: Candidate | None = None
    #: deployed seq -> the event that decided it.
    decisions: dict[int, Event] = field(default_factory=dict)

    @property
    def stable(self) -> str | None:
        return self.stables[-1] if self.stables else None

    @property
    def previous(self) -> str | None:
        return self.stables[-2] if len(self.stables) > 1 else None

    @property
    def last_event(self) -> Event | None:
        return self.events[-1] if self.events else None

    def pending(self) -> list[Candidate]:
        """Deployments nobody has decided yet, oldest first."""
        return [
            Candidate(e.seq, e.ref or "", e.audits)
            for e in self.events
            if e.kind == DEPLOYED and e.seq not in self.decisions
        ]

    @classmethod
    def fold(cls, name: str, events: list[Event]) -> DeploymentState:
        state = cls(name=name, events=list(events))
        deployed: dict[int, Event] = {}
        for event in events:
            if event.kind == DEPLOYED and event.ref:
                deployed[event.seq] = event
            elif event.kind in DECISIONS:
                if event.target is not None:
                    if event.target in state.decisions or event.target not in deployed:
                        continue  # decided already (first decision wins), or about nothing known
                    state.decisions[event.target] = event
                if event.kind == PROMOTED and event.ref and event.ref != state.stable:
                    state.stables.append(event.ref)
            elif event.kind == ROLLED_BACK:
                if len(state.stables) > 1 and state.stables[-1] == event.previous:
                    state.stables.pop()
        undecided = [e for seq, e in deployed.items() if seq not in state.decisions]
        if undecided:
            latest = undecided[-1]
            state.candidate = Candidate(latest.seq, latest.ref or "", latest.audits)
        return state


class Registry:
    """The deployments of one store. Reads are incremental (events never change once written)."""

    def __init__(self, store: Store | str | None = None) -> None:
        self.store = store if isinstance(store, Store) else open_store(store)
        self._events: dict[str, dict[int, Event]] = {}
        self._lock = threading.Lock()

    # -- reading ------------------------------------------------------------------------------------

    def names(self) -> list[str]:
        """Every deployment name with at least one event."""
        names = set()
        for key in self.store.list_documents(PREFIX):
            parts = key[len(PREFIX) :].split("/")
            if len(parts) == 3 and parts[1] == "events":
                names.add(parts[0])
        return sorted(names)

    def events(self, name: str) -> list[Event]:
        """The events of `name`, in order (reading only those not seen before)."""
        check_deployment_name(name)
        with self._lock:
            known = self._events.setdefault(name, {})
        prefix = f"{PREFIX}{name}/events/"
        for key in self.store.list_documents(prefix):
            stem = key[len(prefix) :].removesuffix(".json")
            if not stem.isdigit() or int(stem) in known:
                continue
            try:
                data = self.store.read_document(key)
            except KeyError:
                continue
            event = Event.from_json(int(stem), data)
            with self._lock:
                known[event.seq] = event
        with self._lock:
            return [known[seq] for seq in sorted(known)]

    def state(self, name: str) -> DeploymentState:
        return DeploymentState.fold(name, self.events(name))

    def claims(self, name: str, seq: int) -> list[Claim]:
        """Every attempt at deciding deployment #seq, oldest first (read afresh: holders renew them)."""
        prefix = claims_prefix(check_deployment_name(name), seq)
        found = []
        for key in self.store.list_documents(prefix):
            stem = key[len(prefix) :].removesuffix(".json")
            if not stem.isdigit():
                continue
            try:
                found.append(Claim.from_json(name, seq, int(stem), self.store.read_document(key)))
            except KeyError:
                continue
        return sorted(found, key=lambda claim: claim.attempt)

    def claimant(self, name: str, seq: int) -> Claim | None:
        """The latest claim on deployment #seq, or None if nobody claimed it."""
        claims = self.claims(name, seq)
        return claims[-1] if claims else None

    def describe_pending(self, name: str, candidate: Candidate) -> str:
        """What is happening to an undecided deployment: who audits it since when, or that nobody does."""
        decision = self.decision(name, candidate.seq)
        if decision is not None:
            return f"decided ({decision.describe()}), not yet in the log"
        claim = self.claimant(name, candidate.seq)
        if claim is None:
            return "undecided: no server has claimed it yet (one watching the name will)"
        return claim.describe()

    def decision(self, name: str, seq: int) -> Event | None:
        """The decision recorded for deployment #seq (its `seq` is 0: the document is not an event), or None."""
        try:
            return Event.from_json(
                0, self.store.read_document(decision_key(check_deployment_name(name), seq))
            )
        except KeyError:
            return None

    # -- writing ------------------------------------------------------------------------------------

    def append(self, name: str, kind: str, **fields: Any) -> Event:
        """Record an event under the next free sequence number (exclusive create; retried on a race)."""
        if kind not in KINDS:
            raise ValueError(f"event kind {kind!r}: expected one of {', '.join(KINDS)}")
        if not fields.get("by"):
            fields["by"] = who()
        for key in ("audits", "reasons"):
            fields[key] = tuple(fields.get(key, ()))
        events = self.events(name)
        seq = events[-1].seq + 1 if events else 1
        for _ in range(_MAX_ATTEMPTS):
            event = Event(seq=seq, kind=kind, at=now(), **fields)
            if self.store.write_document(event_key(name, seq), event.to_json(), exclusive=True):
                with self._lock:
                    self._events.setdefault(name, {})[seq] = event
                return event
            seq += 1  # another writer took it: the next one
        raise RuntimeError(f"could not record a {kind} event for deployment {name!r} in {self.store.url}")

    def claim(
        self,
        name: str,
        seq: int,
        by: str | None = None,
        *,
        attempt: int = 1,
        lease: float = DEFAULT_LEASE,
        holder: dict[str, Any] | None = None,
    ) -> Claim | None:
        """Become the one who decides deployment #seq (`attempt` n+1: take over from the holder of attempt n);
        None if someone else made that attempt first. `holder` defaults to this process."""
        at = now()
        claim = Claim(
            name, seq, attempt, by or who(), at, at, 0, float(lease), holder or holders.this_process()
        )
        if self.store.write_document(claim_key(name, seq, attempt), claim.to_json(), exclusive=True):
            return claim
        return None

    def renew(self, claim: Claim) -> Claim:
        """The holder's heartbeat: rewrite its claim with the next beat."""
        renewed = dataclasses.replace(claim, renewed=now(), beat=claim.beat + 1)
        self.store.write_document(claim_key(claim.name, claim.seq, claim.attempt), renewed.to_json())
        return renewed

    def decide(
        self,
        name: str,
        kind: str,
        *,
        ref: str | None,
        target: int,
        reasons: tuple[str, ...] | list[str] = (),
        by: str | None = None,
    ) -> tuple[bool, Event]:
        """Create the one decision about deployment #target (exclusive): (True, it) if this call made it,
        else (False, the decision made first). Record the won decision as an event with `record`."""
        if kind not in DECISIONS:
            raise ValueError(f"decision kind {kind!r}: expected one of {', '.join(DECISIONS)}")
        decision = Event(0, kind, now(), by or who(), ref=ref, target=target, reasons=tuple(reasons))
        doc = json.loads(decision.to_json())
        doc["holder"] = holders.this_process()
        if self.store.write_document(
            decision_key(name, target), json.dumps(doc, indent=1).encode(), exclusive=True
        ):
            return True, decision
        recorded = self.decision(name, target)
        if recorded is None:  # pragma: no cover - a decision document is never deleted
            raise RuntimeError(
                f"the decision on deployment #{target} of {name!r} vanished from {self.store.url}"
            )
        return False, recorded

    def record(self, name: str, decision: Event) -> Event:
        """Append a decision (from `decide` or `decision`) to the log."""
        return self.append(
            name,
            decision.kind,
            ref=decision.ref,
            target=decision.target,
            reasons=decision.reasons,
            by=decision.by,
        )

    def settle(
        self,
        name: str,
        kind: str,
        *,
        ref: str | None,
        target: int,
        reasons: tuple[str, ...] | list[str] = (),
        by: str | None = None,
    ) -> tuple[bool, Event]:
        """`decide`, then `record` the decision if this call made it."""
        won, decision = self.decide(name, kind, ref=ref, target=target, reasons=reasons, by=by)
        return won, self.record(name, decision) if won else decision

    # -- operations ---------------------------------------------------------------------------------

    def deploy(self, name: str, ref: str, audits: tuple[str, ...] = (), *, by: str | None = None) -> Event:
        """Make `ref` the candidate of `name`; older undecided deployments nobody claimed are superseded."""
        event = self.append(name, DEPLOYED, ref=ref, audits=tuple(audits), by=by or who())
        for older in self.state(name).pending():
            if older.seq < event.seq and self.claim(name, older.seq, by=f"deployment #{event.seq}"):
                self.supersede(name, older, event.seq)
        return event

    def supersede(
        self, name: str, older: Candidate, newer: int, *, by: str | None = None
    ) -> tuple[bool, Event]:
        """Decide that deployment #older.seq will not be audited: #newer replaced it."""
        reason = f"superseded by deployment #{newer} before a server audited it"
        return self.settle(name, SUPERSEDED, ref=older.ref, target=older.seq, reasons=(reason,), by=by)

    def promote(self, name: str, ref: str | None = None, *, by: str | None = None) -> Event:
        """Make the candidate (or `ref`, which may start a new deployment name) stable without audits."""
        if ref is None:
            state = self._existing(name)
            if state.candidate is None:
                raise NothingToDo(
                    f"deployment {name!r} in {self.store.url} has no candidate to promote; "
                    "give a version with --version REF"
                )
            candidate = state.candidate
            won, decision = self.settle(name, PROMOTED, ref=candidate.ref, target=candidate.seq, by=by)
            if not won:
                raise NothingToDo(
                    f"deployment #{candidate.seq} of {name!r} was decided while promoting it: {decision.describe()}"
                )
            return decision
        return self.append(name, PROMOTED, ref=ref, by=by)

    def rollback(self, name: str, *, by: str | None = None) -> Event:
        """Make the previous version stable again."""
        state = self._existing(name)
        if state.previous is None:
            what = f"no version before {short_ref(state.stable)}" if state.stable else "no stable version"
            raise NothingToDo(f"deployment {name!r} in {self.store.url} has {what} to roll back to")
        return self.append(name, ROLLED_BACK, ref=state.previous, previous=state.stable, by=by)

    def _existing(self, name: str) -> DeploymentState:
        state = self.state(name)
        if not state.events:
            raise NothingToDo(f"no deployment named {name!r} in {self.store.url} (deploy one first)")
        return state
