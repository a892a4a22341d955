"""Deployments: the registry in a store, audits, a real server watching deployments, and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import httpx
import pytest
from click.testing import CliRunner

import satchel
from satchel.cli import main as cli
from satchel.serving import create_app
from satchel.serving.cli import serve_command
from satchel.serving.deploy import DeploymentFailed, DeploymentTimeout, deploy, rollback
from satchel.serving.deploy import registry as reg
from satchel.serving.deploy.audits import AuditError, audit_reference, normalise, run_audit
from satchel.serving.deploy.watcher import watch_deployments
from satchel.serving.hosting import Hosting
from tests.conftest import REPO
from tests.functions import deploy_audits, versions
from tests.serving.running import RunningServer, ServeProcess
from tests.waiting import pid_gone, wait_gone, wait_until

AUDITS = "tests.functions.deploy_audits"
POLL = 0.05


@pytest.fixture(scope="module")
def churn(tmp_path_factory: pytest.TempPathFactory) -> dict[int, str]:
    """churn:1, churn:2 and churn:3 in a module store: three versions answering "v1:", "v2:", "v3:"."""
    store = (tmp_path_factory.mktemp("deploy") / "store").as_uri()
    fns = [versions.score_v1, versions.score_v2, versions.score_v3]
    return {i: str(fn.export(name="churn", store=store)) for i, fn in enumerate(fns, start=1)}


@pytest.fixture(scope="module")
def store(churn) -> str:
    return churn[1].rpartition("#")[0]


@pytest.fixture(scope="module")
def server(churn, store):
    """A real server watching `churn` (stable: churn:1, promoted by hand before it starts) and others."""
    reg.Registry(store).promote("churn", churn[1])
    hosting = Hosting.of([])
    names = ["churn", "other", "inflight", "fromflow"]
    try:
        watch_deployments(hosting, names, store=store, poll_interval=POLL, retire_grace=0.05)
        with RunningServer(create_app(hosting)) as running:
            yield running
    finally:
        hosting.close()


def answer(server: RunningServer, name: str, **body) -> str | None:
    r = httpx.post(f"{server.url}/v1/functions/{name}:invoke", json={"x": 1.0, **body}, timeout=60)
    return r.json()["result"] if r.status_code == 200 else None


def served_pids(server: RunningServer, name: str) -> list[int]:
    hosting = server.server.config.app.state.hosting
    return [pid for pid in hosting.functions[name].fn.worker_pids if pid]


# -- the registry -------------------------------------------------------------------------------------


def test_registry_folds_events_into_versions(tmp_path) -> None:
    registry = reg.Registry(tmp_path.as_uri())
    assert registry.names() == [] and registry.state("m").stable is None
    with pytest.raises(reg.NothingToDo, match="no deployment named 'm'"):
        registry.rollback("m")
    first = registry.deploy("m", "s#m:1", ("a:b",))
    assert registry.state("m").candidate == reg.Candidate(first.seq, "s#m:1", ("a:b",))
    registry.promote("m")  # the candidate, by hand
    registry.deploy("m", "s#m:2")
    registry.append("m", reg.PROMOTED, ref="s#m:2", target=3)
    third = registry.deploy("m", "s#m:3")
    registry.append("m", reg.AUDIT_FAILED, ref="s#m:3", target=third.seq, reasons=["too slow"])
    registry.append("m", reg.PROMOTED, ref="s#m:3", target=third.seq)  # too late: the first decision won
    state = registry.state("m")
    assert (state.stable, state.previous, state.candidate) == ("s#m:2", "s#m:1", None)
    assert state.decisions[third.seq].reasons == ("too slow",)
    with pytest.raises(reg.NothingToDo, match="no candidate"):
        registry.promote("m")
    registry.rollback("m")
    assert (registry.state("m").stable, registry.state("m").previous) == ("s#m:1", None)
    with pytest.raises(reg.NothingToDo, match="no version before m:1"):
        registry.rollback("m")
    # another reader (a fresh registry) folds the same history from the store
    again = reg.Registry(tmp_path.as_uri())
    assert [e.kind for e in again.events("m")] == [e.kind for e in registry.events("m")]
    assert again.state("m").stable == "s#m:1" and again.names() == ["m"]
    assert "rolled back m:1 by " in again.state("m").last_event.describe()


def test_a_newer_deployment_supersedes_an_unclaimed_one(tmp_path) -> None:
    registry = reg.Registry(tmp_path.as_uri())
    one = registry.deploy("m", "s#m:1")
    assert registry.claim("m", one.seq, by="a server")  # a server is auditing #1
    two = registry.deploy("m", "s#m:2")
    three = registry.deploy("m", "s#m:3")
    state = registry.state("m")
    assert one.seq not in state.decisions  # claimed: its server decides
    assert state.decisions[two.seq].kind == reg.SUPERSEDED
    assert f"deployment #{three.seq}" in state.decisions[two.seq].reasons[0]
    assert state.candidate is not None and state.candidate.seq == three.seq
    assert not registry.claim("m", two.seq)


_WRITER = """
import sys
from satchel.serving.deploy.registry import Registry
registry = Registry(sys.argv[1])
for i in range(int(sys.argv[3])):
    registry.deploy("race", f"s#race:{sys.argv[2]}-{i}")
"""


@pytest.mark.parametrize("backend", ["file", pytest.param("s3", marks=pytest.mark.slow)])
def test_concurrent_writers_lose_no_event(backend, tmp_path, request) -> None:
    url = tmp_path.as_uri() if backend == "file" else request.getfixturevalue("s3_store_url")
    per_writer = 15 if backend == "file" else 3
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen([sys.executable, "-c", _WRITER, url, f"p{i}", str(per_writer)], env=env)
        for i in range(2)
    ]

    def write(tag: str) -> None:
        registry = reg.Registry(url)  # one per thread: no shared cache to hide a race
        for i in range(per_writer):
            registry.deploy("race", f"s#race:{tag}-{i}")

    threads = [threading.Thread(target=write, args=(f"t{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [proc.wait(timeout=120) for proc in procs] == [0, 0]
    events = reg.Registry(url).events("race")
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    deployed = [e.ref for e in events if e.kind == reg.DEPLOYED]
    expected = {f"s#race:{tag}-{i}" for tag in ("p0", "p1", "t0", "t1") for i in range(per_writer)}
    assert sorted(deployed) == sorted(expected)
    state = reg.Registry(url).state("race")
    # every deployment but the newest is superseded exactly once, by whoever claimed it
    superseded = [e.target for e in events if e.kind == reg.SUPERSEDED]
    assert len(superseded) == len(set(superseded)) == len(expected) - 1
    assert state.candidate is not None and state.candidate.seq == max(
        e.seq for e in events if e.kind == reg.DEPLOYED
    )


# -- audits -------------------------------------------------------------------------------------------


def test_audits_are_recorded_by_import_reference() -> None:
    assert audit_reference(deploy_audits.answers) == f"{AUDITS}:answers"
    assert audit_reference("checks.models:accuracy") == "checks.models:accuracy"

    def nested(candidate) -> bool:
        return True

    with pytest.raises(AuditError, match="lambda"):
        audit_reference(lambda candidate: True)
    with pytest.raises(AuditError, match="nested.*closure"):
        audit_reference(nested)
    nested.__module__, nested.__qualname__ = "__main__", "in_main"
    with pytest.raises(AuditError, match="in_main is defined in __main__"):
        audit_reference(nested)
    with pytest.raises(AuditError, match="expected an import reference"):
        audit_reference("no colon here")
    with pytest.raises(AuditError, match="expected a function"):
        audit_reference(42)  # type: ignore[arg-type]


def test_audit_results_are_normalised() -> None:
    assert normalise("a:b", True).passed and not normalise("a:b", False).passed
    assert normalise("a:b", (False, "too slow")).reason == "too slow"
    assert "returned None" in normalise("a:b", None).reason and not normalise("a:b", None).passed
    raised = run_audit(f"{AUDITS}:raises", candidate=None)
    assert not raised.passed and raised.reason == "raised AssertionError: accuracy 0.41 is below 0.9"
    missing = run_audit(f"{AUDITS}:nope", candidate=None)
    assert not missing.passed and "has no attribute 'nope'" in missing.reason
    gone = run_audit("no_such_module_here:x", candidate=None)
    assert not gone.passed and "cannot import module 'no_such_module_here'" in gone.reason


def test_an_audit_past_its_timeout_fails() -> None:
    release = threading.Event()
    try:
        result = run_audit(f"{AUDITS}:blocks", candidate=release, timeout=0.05)
        assert not result.passed and result.reason == "did not finish within 0.05s"
    finally:
        release.set()
    assert run_audit(f"{AUDITS}:blocks", candidate=release, timeout=60).passed


def test_deploy_refuses_an_unimportable_audit_before_recording(churn, tmp_path) -> None:
    with pytest.raises(AuditError, match="lambda"):
        deploy(churn[1], "m", audits=[lambda c: True], store=tmp_path.as_uri())
    with pytest.raises(ValueError, match="deployment name 'no spaces please' is not valid"):
        deploy(churn[1], "no spaces please", store=tmp_path.as_uri())
    with pytest.raises(ValueError, match="wait must be a number of seconds"):
        deploy(churn[1], "m", wait=-1, store=tmp_path.as_uri())
    assert reg.Registry(tmp_path.as_uri()).names() == []


def test_deploy_without_a_server_times_out_saying_so(churn, tmp_path) -> None:
    pending = deploy(churn[2], "lonely", store=tmp_path.as_uri())
    assert pending.promoted is None and "#churn:2@sha256:" in pending.ref
    with pytest.raises(DeploymentTimeout, match="no server seems to be watching deployment 'lonely'"):
        deploy(churn[2], "lonely", wait=0.2, store=tmp_path.as_uri())


# -- a real server watching deployments ----------------------------------------------------------------


def test_promote_on_passing_audits_keep_old_on_failure_and_roll_back(server, churn, store) -> None:
    assert answer(server, "churn") == "v1:1.0"
    v1_pids = served_pids(server, "churn")
    audits = [deploy_audits.answers, deploy_audits.not_v3]
    outcome = satchel.deploy(churn[2], name="churn", audits=audits, wait=60)
    assert outcome.promoted is True and outcome.ref.startswith(f"{store}#churn:2@sha256:")
    assert answer(server, "churn") == "v2:1.0"  # a recorded promotion is one already served
    assert all(wait_gone(pid) for pid in v1_pids)  # the old version was closed
    with pytest.raises(DeploymentFailed, match="regression: the candidate answered 'v3:2.0'") as failed:
        satchel.deploy(churn[3], name="churn", audits=audits, wait=60)
    assert failed.value.outcome.promoted is False
    assert answer(server, "churn") == "v2:1.0"  # still the old version
    state = reg.Registry(store).state("churn")
    assert [reg.short_ref(s) for s in state.stables] == ["churn:1", "churn:2"]
    kinds = [e.kind for e in state.events]
    assert kinds[-3:] == [reg.PROMOTED, reg.DEPLOYED, reg.AUDIT_FAILED] and reg.AUDIT_PASSED in kinds
    assert state.events[-1].by.startswith("server pid ")

    result = CliRunner().invoke(cli, ["deployments", "ls", "--store", store])
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if line.strip().startswith("churn"))
    cells = [cell.strip() for cell in row.split("│")]
    assert cells[:4] == ["churn", "churn:2", "", "churn:1"]  # name, stable, candidate, previous
    assert "audit failed churn:3" in row and "regression" in row

    rollback("churn", store=store)
    wait_until(lambda: answer(server, "churn") == "v1:1.0", timeout=60, what="the rollback to churn:1")
    openapi = httpx.get(f"{server.url}/openapi.json").json()
    assert "Version 1 of the scorer." in json.dumps(openapi)  # the document follows the swap


def test_cli_deploy_with_audits_and_manual_promote(server, churn, store) -> None:
    runner = CliRunner()
    assert answer(server, "other") is None  # nothing deployed under this name yet
    args = ["deploy", churn[2], "--name", "other", "--audit", f"{AUDITS}:answers", "--store", store]
    result = runner.invoke(cli, [*args, "--wait", "60"])
    assert result.exit_code == 0, result.output
    assert "to other: promoted" in result.output
    assert answer(server, "other") == "v2:1.0"
    args = ["deploy", churn[3], "--name", "other", "--audit", f"{AUDITS}:raises", "--store", store]
    result = runner.invoke(cli, [*args, "--wait", "60"])
    assert result.exit_code == 1
    assert "raised AssertionError: accuracy 0.41 is below 0.9" in result.output
    assert answer(server, "other") == "v2:1.0"
    result = runner.invoke(cli, ["deployments", "promote", "other", "--version", "churn:3", "--store", store])
    assert result.exit_code == 0, result.output
    assert "promoted churn:3" in result.output
    wait_until(lambda: answer(server, "other") == "v3:1.0", timeout=60, what="the manual promotion")
    result = runner.invoke(cli, ["deployments", "promote", "other", "--store", store])
    assert result.exit_code == 1 and "no candidate to promote" in result.output
    result = runner.invoke(cli, ["deployments", "history", "other", "--store", store])
    lines = [line.split(maxsplit=2)[1:] for line in result.output.splitlines()]
    assert [words[0] for words in lines] == ["deployed", "audit", "promoted", "deployed", "audit", "promoted"]
    assert "failed churn:3" in lines[4][1] and "accuracy 0.41" in lines[4][1]


def test_calls_in_flight_finish_on_the_replaced_version(server, churn, store, tmp_path) -> None:
    blocking = str(versions.score_blocking.export(name="blocking", store=store))
    reg.Registry(store).promote("inflight", blocking)
    assert wait_until(lambda: answer(server, "inflight"), timeout=60, what="inflight served") == "v0:1.0"
    old_pids = served_pids(server, "inflight")
    started, release = tmp_path / "started", tmp_path / "release"
    replies: list[httpx.Response] = []
    body = {"x": 7.0, "started": str(started), "release": str(release)}
    url = f"{server.url}/v1/functions/inflight:invoke"
    call = threading.Thread(target=lambda: replies.append(httpx.post(url, json=body, timeout=60)))
    call.start()
    wait_until(started.exists, timeout=60, what="the call to start on the old version")
    assert deploy(churn[2], "inflight", wait=60, store=store).promoted is True
    assert answer(server, "inflight") == "v2:1.0"  # new calls: the new version
    assert not any(pid_gone(pid) for pid in old_pids)  # the old version still runs its call
    release.touch()
    call.join(timeout=60)
    assert replies[0].status_code == 200 and replies[0].json() == {"result": "v0:7.0"}
    assert all(wait_gone(pid) for pid in old_pids)  # then it was closed


def test_a_flow_step_deploys(server, churn, store, store_url) -> None:
    from satchel.flows import Runner
    from tests.functions.deploy_flow import DeployFlow

    run = Runner(DeployFlow).run(ref=churn[2], registry=store)
    assert run.data.promoted is True and run.data.deployed.startswith(f"{store}#churn:2@")
    assert answer(server, "fromflow") == "v2:1.0"


def test_a_stable_version_that_will_not_load(churn, tmp_path) -> None:
    registry = reg.Registry(tmp_path.as_uri())
    missing = churn[1].replace("#churn:1@", "#churn:99@")
    registry.promote("broken", missing)
    empty = Hosting.of([])
    with pytest.raises(satchel.SatchelError, match="deployment 'broken': cannot load its stable version"):
        watch_deployments(empty, ["broken"], store=registry.store)
    assert "broken" not in empty.functions and empty.services == [empty.jobs]  # nothing left running
    empty.close()
    registry.promote("flaky", churn[1])
    hosting = Hosting.of([])
    try:
        watcher = watch_deployments(hosting, ["flaky"], store=registry.store, poll_interval=POLL)
        registry.promote("flaky", missing)  # at run time: logged, and the old version keeps serving
        problem = wait_until(lambda: watcher.problems.get("flaky"), timeout=60, what="the load failure")
        assert "churn:99" in problem and "cannot load the stable version" in problem
        assert hosting.functions["flaky"].fn(4.0) == "v1:4.0"
    finally:
        hosting.close()


def test_two_servers_watching_one_name_audit_once_and_both_switch(churn, tmp_path) -> None:
    registry = tmp_path.as_uri()
    hostings = [Hosting.of([]), Hosting.of([])]
    try:
        for hosting in hostings:
            watch_deployments(hosting, ["dual"], store=registry, poll_interval=POLL, retire_grace=0.05)
        outcome = deploy(churn[2], "dual", audits=[deploy_audits.answers], wait=60, store=registry)
        assert outcome.promoted is True
        for hosting in hostings:
            wait_until(lambda h=hosting: "dual" in h.functions, timeout=60, what="both servers to switch")
            assert hosting.functions["dual"].fn(3.0) == "v2:3.0"
        events = reg.Registry(registry).events("dual")
        assert [e.kind for e in events] == [reg.DEPLOYED, reg.AUDIT_PASSED, reg.PROMOTED]
    finally:
        for hosting in hostings:
            hosting.close()


@pytest.mark.slow
def test_satchel_serve_process_watches_a_deployment(churn, tmp_path) -> None:
    """`satchel serve --deployment` in its own process: it imports the audits itself (from its cwd)."""
    registry = tmp_path.as_uri()
    args = ["--deployment", "churn", "--store", registry, "--poll-interval", str(POLL), "--workers", "1"]
    with ServeProcess(args, tmp_path / "serve.log") as server:
        outcome = deploy(churn[2], "churn", audits=[deploy_audits.not_v3], wait=60, store=registry)
        assert outcome.promoted is True and outcome.reasons == []
        r = httpx.post(f"{server.url}/v1/functions/churn:invoke", json={"x": 5}, timeout=60)
        assert r.json() == {"result": "v2:5.0"}
        with pytest.raises(DeploymentFailed, match="regression"):
            deploy(churn[3], "churn", audits=[deploy_audits.not_v3], wait=60, store=registry)
    stderr = server.stderr()
    assert "deployment churn: promoted churn:2" in stderr  # the server's log
    assert "churn:3 failed its audits" in stderr


def test_serve_needs_refs_or_deployments() -> None:
    result = CliRunner().invoke(serve_command, [])
    assert result.exit_code == 2 and "--deployment NAME" in result.output
    result = CliRunner().invoke(serve_command, ["--deployment", "churn", "--claim-lease", "0"])
    assert result.exit_code == 2 and "--claim-lease" in result.output
