"""Deployments that survive their auditor: a server killed mid-audit, claims that lapse, decisions made
twice, and names audited side by side (one slow audit holds up no other name)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from satchel.cli import main as cli
from satchel.core import identity as holders
from satchel.serving.deploy import DeploymentTimeout, deploy, wait_for_outcome
from satchel.serving.deploy import registry as reg
from satchel.serving.deploy.api import outcome_of
from satchel.serving.deploy.watcher import watch_deployments
from satchel.serving.hosting import Hosting
from tests.functions import deploy_audits, deploy_gates, versions
from tests.serving.running import ServeProcess
from tests.waiting import wait_until

POLL = 0.05
GATED = "tests.functions.deploy_gates:gated"


@pytest.fixture(scope="module")
def refs(tmp_path_factory: pytest.TempPathFactory) -> dict[int, str]:
    """score:1 and score:2 in a module store, answering "v1:..." and "v2:..."."""
    store = (tmp_path_factory.mktemp("recovery") / "store").as_uri()
    return {
        i: str(fn.export(name="score", store=store))
        for i, fn in ((1, versions.score_v1), (2, versions.score_v2))
    }


@pytest.fixture
def gate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The gate of `deploy_gates.gated` for audits run in this process (and servers it starts)."""
    folder = tmp_path / "gate"
    folder.mkdir()
    monkeypatch.setenv(deploy_gates.GATE, str(folder))
    yield folder
    (folder / "release").touch()  # never leave an audit waiting


def history(registry: str, name: str) -> str:
    result = CliRunner().invoke(cli, ["deployments", "history", name, "--store", registry])
    assert result.exit_code == 0, result.output
    return result.output


def listing(registry: str) -> str:
    result = CliRunner().invoke(cli, ["deployments", "ls", "--store", registry])
    assert result.exit_code == 0, result.output
    return result.output


def dead_holder() -> dict:
    """The holder record of a process of this machine that has exited."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return {**holders.this_process(), "pid": proc.pid, "started": "0"}


def decisions(registry: reg.Registry, name: str) -> list[reg.Event]:
    """The decisions about deployments (not promotions by hand of a given version)."""
    return [e for e in registry.events(name) if e.kind in reg.DECISIONS and e.target is not None]


# -- registry ------------------------------------------------------------------------------------------


def test_of_two_deciders_exactly_one_records(refs, tmp_path) -> None:
    url = tmp_path.as_uri()
    seq = reg.Registry(url).deploy("m", refs[2]).seq
    barrier = threading.Barrier(2)
    results: list[tuple[bool, reg.Event]] = []

    def decide(kind: str) -> None:
        registry = reg.Registry(url)  # each its own reader, as two servers are
        barrier.wait()
        results.append(registry.settle("m", kind, ref=refs[2], target=seq, by=f"server {kind}"))

    threads = [threading.Thread(target=decide, args=(kind,)) for kind in (reg.PROMOTED, reg.AUDIT_FAILED)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(won for won, _ in results) == [False, True]
    winner = next(event for won, event in results if won)
    loser = next(event for won, event in results if not won)
    assert (loser.kind, loser.by) == (winner.kind, winner.by)  # the loser is told the recorded decision
    registry = reg.Registry(url)
    assert [(e.kind, e.target) for e in decisions(registry, "m")] == [(winner.kind, seq)]
    with pytest.raises(reg.NothingToDo, match="no candidate to promote"):
        registry.promote("m")


def test_a_manual_promote_loses_to_a_decision_made_meanwhile(refs, tmp_path) -> None:
    registry = reg.Registry(tmp_path.as_uri())
    seq = registry.deploy("m", refs[2]).seq
    registry.decide("m", reg.AUDIT_FAILED, ref=refs[2], target=seq, reasons=["too slow"], by="a server")
    # the server has not logged its decision yet: the candidate still looks undecided
    assert registry.state("m").candidate is not None
    assert "decided (audit failed score:2" in history(tmp_path.as_uri(), "m")
    with pytest.raises(reg.NothingToDo, match=f"#{seq} of 'm' was decided while promoting it: audit failed"):
        registry.promote("m")
    assert decisions(registry, "m") == []


def test_history_and_ls_say_who_audits_an_undecided_candidate(refs, tmp_path) -> None:
    url = tmp_path.as_uri()
    registry = reg.Registry(url)
    seq = registry.deploy("m", refs[2]).seq
    line = f"#{seq:<4} candidate score:2: undecided: no server has claimed it yet"
    assert history(url, "m").splitlines()[-1].startswith(line)
    assert "score:2 (#1): undecided: no server has claimed it yet" in listing(url)
    claim = registry.claim("m", seq, by="server pid 7 on elsewhere", holder={"host": "elsewhere", "pid": 7})
    assert claim is not None
    shown = history(url, "m").splitlines()[-1]
    assert shown.startswith(f"#{seq:<4} candidate score:2: auditing since {reg.short_time(claim.at)}")
    assert "by server pid 7 on elsewhere (heartbeat " in shown
    taken = registry.claim("m", seq, by="server pid 8 here", attempt=2, holder=dead_holder())
    assert taken is not None and registry.claimant("m", seq) == taken
    shown = history(url, "m").splitlines()[-1]
    assert "undecided: claimed at " in shown and "by server pid 8 here, no longer running, attempt 2" in shown
    assert "no longer running" in listing(url)
    lapsed = reg.Claim(
        "m",
        seq,
        3,
        "server pid 9 on far",
        "2020-01-02T03:04:05.000000Z",
        "2020-01-02T03:05:06.000000Z",
        4,
        30.0,
        {"host": "far", "pid": 9},
    )
    registry.store.write_document(reg.claim_key("m", seq, 3), lapsed.to_json(), exclusive=True)
    shown = history(url, "m").splitlines()[-1]
    assert (
        "undecided: claimed at 2020-01-02 03:04:05 by server pid 9 on far, no heartbeat since 03:05:06"
        in shown
    )
    assert "(lease 30s, attempt 3; a server watching the name takes it over)" in shown


# -- watchers ------------------------------------------------------------------------------------------


def test_a_slow_audit_holds_up_no_other_name(refs, tmp_path, gate) -> None:
    url = tmp_path.as_uri()
    hosting = Hosting.of([])
    try:
        watcher = watch_deployments(hosting, ["slow", "fast"], store=url, poll_interval=POLL, claim_lease=0.3)
        slow = deploy(refs[2], "slow", audits=[deploy_gates.gated], store=url)
        wait_until(lambda: deploy_gates.started(gate), timeout=60, what="the slow audit to start")
        fast = deploy(refs[2], "fast", audits=[deploy_audits.answers], wait=60, store=url)
        assert fast.promoted is True and hosting.functions["fast"].fn(4.0) == "v2:4.0"
        assert outcome_of("slow", slow.seq, store=url).promoted is None  # still auditing
        assert "slow" not in hosting.functions and watcher.auditing() == {"slow": slow.seq}
        shown = history(url, "slow").splitlines()[-1]
        assert "candidate score:2: auditing since" in shown and f"by server pid {os.getpid()} on" in shown
        # its heartbeat runs while the audit waits, so no server elsewhere takes it over
        wait_until(lambda: reg.Registry(url).claimant("slow", slow.seq).beat >= 2, timeout=60, what="beats")
        (gate / "release").touch()
        assert wait_for_outcome("slow", slow.seq, 60, store=url).promoted is True
        assert hosting.functions["slow"].fn(5.0) == "v2:5.0"
    finally:
        (gate / "release").touch()
        hosting.close()


def test_a_lapsed_claim_is_taken_over_and_the_first_decision_stands(refs, tmp_path, gate) -> None:
    """A holder elsewhere stops renewing its claim: a watcher takes over after the lease. The holder was
    only slow and decides first: the watcher's decision loses, and it serves what was recorded."""
    url = tmp_path.as_uri()
    registry = reg.Registry(url)
    registry.promote("dual", refs[1])
    seq = registry.deploy("dual", refs[2], (GATED,)).seq
    elsewhere = {"host": "elsewhere", "pid": 7}
    slow = registry.claim("dual", seq, by="server pid 7 on elsewhere", lease=0.2, holder=elsewhere)
    assert slow is not None
    hosting = Hosting.of([])
    try:
        watcher = watch_deployments(hosting, ["dual"], store=url, poll_interval=POLL, retire_grace=0.05)
        assert hosting.functions["dual"].fn(1.0) == "v1:1.0"
        wait_until(lambda: deploy_gates.started(gate), timeout=60, what="the watcher to take over")
        claims = registry.claims("dual", seq)
        assert [(c.attempt, c.by) for c in claims] == [(1, slow.by), (2, watcher.identity)]
        won, _ = registry.settle("dual", reg.PROMOTED, ref=refs[2], target=seq, by=slow.by)
        assert won
        (gate / "release").touch()
        wait_until(lambda: not watcher.auditing(), timeout=60, what="the watcher's audit to end")
        recorded = decisions(registry, "dual")
        assert [(e.kind, e.target, e.by) for e in recorded] == [(reg.PROMOTED, seq, slow.by)]
        assert reg.AUDIT_PASSED not in [e.kind for e in registry.events("dual")]
        wait_until(lambda: hosting.functions["dual"].fn(2.0) == "v2:2.0", timeout=60, what="the switch")
    finally:
        (gate / "release").touch()
        hosting.close()


def test_work_a_dead_process_left_is_finished(refs, tmp_path) -> None:
    """A decision made but not logged, and a candidate claimed by a process that died before a newer
    deployment came: the watcher logs the first and supersedes the second, then audits the newest."""
    url = tmp_path.as_uri()
    registry = reg.Registry(url)
    first = registry.deploy("left", refs[1]).seq
    assert registry.claim("left", first, holder=dead_holder())
    registry.decide("left", reg.PROMOTED, ref=refs[1], target=first)  # then it died
    second = registry.deploy("left", refs[2]).seq
    assert registry.claim("left", second, holder=dead_holder())
    third = registry.deploy("left", refs[2], (f"{deploy_audits.__name__}:answers",)).seq
    assert {c.seq for c in registry.state("left").pending()} == {first, second, third}
    hosting = Hosting.of([])
    try:
        watch_deployments(hosting, ["left"], store=url, poll_interval=POLL, retire_grace=0.05)
        assert wait_for_outcome("left", third, 60, store=url).promoted is True
        state = registry.state("left")
        kinds = {seq: state.decisions[seq].kind for seq in (first, second, third)}
        assert kinds == {first: reg.PROMOTED, second: reg.SUPERSEDED, third: reg.PROMOTED}
        assert len(decisions(registry, "left")) == 3
        assert [reg.short_ref(s) for s in state.stables] == ["score:1", "score:2"]
        wait_until(lambda: hosting.functions["left"].fn(3.0) == "v2:3.0", timeout=60, what="score:2 served")
    finally:
        hosting.close()


# -- a real `satchel serve` killed mid-audit ------------------------------------------------------------


def start_server(registry: str, log: Path, lease: float = 30.0) -> tuple[subprocess.Popen, str]:
    args = ["--deployment", "score", "--store", registry, "--poll-interval", str(POLL), "--workers", "1"]
    args += ["--claim-lease", str(lease)]
    server = ServeProcess(args, log).start()  # the test kills or stops it itself
    assert server.proc is not None
    return server.proc, server.url


@pytest.mark.slow
def test_a_server_killed_mid_audit_is_replaced_by_the_next(refs, tmp_path, gate) -> None:
    registry = tmp_path.joinpath("registry").as_uri()
    reg.Registry(registry).promote("score", refs[1])
    first, _ = start_server(registry, tmp_path / "first.log", lease=45.0)
    second = None
    try:
        seq = deploy(refs[2], "score", audits=[GATED], store=registry).seq
        wait_until(lambda: deploy_gates.started(gate), timeout=60, what="the first server's audit")
        assert deploy_gates.started(gate) == [first.pid]
        assert "auditing since" in history(registry, "score").splitlines()[-1]
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
        shown = history(registry, "score").splitlines()[-1]
        assert "undecided: claimed at" in shown and f"server pid {first.pid} on " in shown
        assert "no longer running" in shown and outcome_of("score", seq, store=registry).promoted is None
        with pytest.raises(DeploymentTimeout, match=f"server pid {first.pid} on .* is no longer running"):
            wait_for_outcome("score", seq, 0, store=registry)
        (gate / "release").touch()
        second, url = start_server(registry, tmp_path / "second.log")
        outcome = wait_for_outcome("score", seq, 120, store=registry)
        assert outcome.promoted is True
        assert deploy_gates.started(gate) == sorted([first.pid, second.pid])
        claims = reg.Registry(registry).claims("score", seq)
        assert [(c.attempt, c.holder["pid"]) for c in claims] == [(1, first.pid), (2, second.pid)]
        assert [c.lease for c in claims] == [45.0, 30.0]  # `satchel serve --claim-lease`
        recorded = decisions(reg.Registry(registry), "score")
        assert [(e.kind, e.target) for e in recorded] == [(reg.PROMOTED, seq)]
        assert recorded[0].by.startswith(f"server pid {second.pid} ")
        r = httpx.post(f"{url}/v1/functions/score:invoke", json={"x": 5}, timeout=60)
        assert r.json() == {"result": "v2:5.0"}
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=60)
    log = (tmp_path / "second.log").read_text()
    assert f"taking over #{seq} from server pid {first.pid}" in log and "no longer running" in log
