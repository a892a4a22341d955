"""The escape hatch: `satchel.escape("module:function")` in a worker runs a function in the caller's own
environment (its interpreter and import path), with real bundles, workers and escaped processes."""

from __future__ import annotations

import json
import os
import signal
import sys
import textwrap
import threading
from pathlib import Path

import pytest

import satchel
from tests.functions import escaping
from tests.waiting import pid_gone, wait_gone, wait_until

# Importable only in the test process (its directory is put on this process's sys.path): never shipped
# with the bundle, absent from the function's environment.
THICKCLIENT = textwrap.dedent(
    """
    import json
    import os
    import sys


    def thick(argument):
        if argument == "fail":
            raise LookupError("no such account")
        if argument == "crash":
            print("thickclient: about to crash", file=sys.stderr, flush=True)
            os._exit(9)
        if argument == "spin":
            marker = os.path.join(os.path.dirname(__file__), f"spinning-{os.getpid()}")
            open(marker, "w").close()
            while True:
                pass
        if argument == "lambda":
            return lambda: None
        return {
            "argument": argument,
            "executable": sys.executable,
            "pid": os.getpid(),
            "ppid": os.getppid(),
            "transport": _transport(),
            "path": sys.path,
        }


    def _transport():
        escaped = "satchel.runtime.worker.escaped" in sys.modules  # an escaped process: its spec is argv[1]
        return json.loads(sys.argv[1])["transport"] if escaped else None


    class Client:
        def __init__(self):
            self.prefix = "client:"

        @classmethod
        def greet(cls, argument):
            return cls().prefix + argument


    NOT_A_FUNCTION = 3
    """
)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    return (tmp_path_factory.mktemp("store") / "s").as_uri()


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory: pytest.TempPathFactory):
    """A directory on this process's sys.path holding `thickclient`."""
    root = tmp_path_factory.mktemp("base")
    (root / "thickclient.py").write_text(THICKCLIENT)
    sys.path.insert(0, str(root))
    yield root
    sys.path.remove(str(root))
    sys.modules.pop("thickclient", None)


@pytest.fixture(scope="module")
def probe_ref(store: str, base_dir: Path):
    return escaping.probe.export(name="probe", store=store)


def _outcomes(fn, target: str, *arguments: str, timeouts: list[float] | None = None) -> tuple[list, dict]:
    outcomes = fn(target, list(arguments), timeouts or [0.0] * len(arguments))
    return outcomes[:-1], outcomes[-1]


def _shm_segments(pid: int) -> list[str]:
    return sorted(p.name for p in Path("/dev/shm").glob(f"satchel-{pid}-*"))


@pytest.mark.parametrize("transport", ["shm", "pipe"])
def test_runs_in_the_callers_environment(probe_ref, base_dir: Path, transport: str) -> None:
    fn = satchel.load(probe_ref, transport=transport)
    try:
        outcomes, worker = _outcomes(fn, "thickclient:thick", "a", "b")
        first, second = (json.loads(o["result"]) for o in outcomes)
        assert worker["thickclient_here"] == "False", "the function's environment must not have thickclient"
        assert worker["executable"] != sys.executable
        assert first["argument"] == "a" and second["argument"] == "b"
        assert first["executable"] == sys.executable
        assert str(base_dir) in first["path"]
        assert first["transport"] == transport
        assert first["ppid"] == int(worker["worker"]) == fn.worker_pid
        child = first["pid"]
        assert second["pid"] == child, "one process per target, started once"
        assert not pid_gone(child)
        worker_pid = fn.worker_pid
    finally:
        fn.close()
    assert wait_gone(worker_pid)
    assert wait_gone(child), "the escaped process outlived its worker"
    assert _shm_segments(worker_pid) == []


def test_class_method_target_and_a_worker_on_python_39(store: str, base_dir: Path) -> None:
    """The client side runs in the function's interpreter, 3.9 and up; pickles cross versions."""
    old = satchel.function(escaping.probe.func, environment=satchel.Environment(python="3.9"))
    with satchel.load(old.export(name="probe39", store=store)) as fn:
        outcomes, _ = _outcomes(fn, "thickclient:Client.greet", "hello")
        assert json.loads(outcomes[0]["result"]) == "client:hello"


def test_exception_is_a_remote_error_and_the_process_stays(probe_ref, base_dir: Path) -> None:
    with satchel.load(probe_ref) as fn:
        outcomes, _ = _outcomes(fn, "thickclient:thick", "fail", "x")
    error, after = outcomes
    assert error["error"] == "RemoteError" and error["type_name"] == "LookupError"
    assert "no such account" in error["message"]
    assert "thickclient.py" in error["message"] and 'raise LookupError("no such account")' in error["message"]
    assert json.loads(after["result"])["argument"] == "x"


def test_unpicklable_argument_and_result_are_named(probe_ref, base_dir: Path) -> None:
    with satchel.load(probe_ref) as fn:
        outcomes, _ = _outcomes(fn, "thickclient:thick", "!unpicklable", "lambda")
    argument, result = outcomes
    assert (
        argument["error"] == "ArgumentError"
        and "argument 1 (function) cannot be pickled" in argument["message"]
    )
    assert result["error"] == "BadResult" and "return value cannot be pickled" in result["message"]


@pytest.mark.parametrize(
    ("target", "named"),
    [
        ("nosuchmodule:fn", "No module named 'nosuchmodule'"),
        ("thickclient:nope", "has no attribute 'nope'"),
        ("thickclient:NOT_A_FUNCTION", "thickclient:NOT_A_FUNCTION is int, not a function"),
    ],
)
def test_unimportable_target_is_one_clear_error(probe_ref, base_dir: Path, target: str, named: str) -> None:
    with satchel.load(probe_ref) as fn:
        outcomes, _ = _outcomes(fn, target, "a", "b")
        worker_pid = fn.worker_pid
    for outcome in outcomes:  # every call says so (nothing is left running between them)
        assert outcome["error"] == "EscapeImportError" and outcome["import_error"] == "True"
        message = outcome["message"]
        assert message.startswith(f"satchel.escape({target!r}): the caller's environment ({sys.executable})")
        assert named in message and "Traceback" not in message
    assert wait_gone(worker_pid)
    assert _shm_segments(worker_pid) == []


def test_crash_is_worker_crashed_and_the_next_call_starts_anew(probe_ref, base_dir: Path) -> None:
    with satchel.load(probe_ref) as fn:
        outcomes, _ = _outcomes(fn, "thickclient:thick", "a", "crash", "b")
        worker_pid = fn.worker_pid
    before, crashed, after = outcomes
    assert crashed["error"] == "WorkerCrashed" and crashed["exit_status"] == "9"
    assert "thickclient: about to crash" in crashed["message"]
    assert "the next call starts a new one" in crashed["message"]
    first, second = json.loads(before["result"])["pid"], json.loads(after["result"])["pid"]
    assert first != second
    assert pid_gone(first)
    assert wait_gone(second)
    assert _shm_segments(worker_pid) == []


def test_timeout_interrupts_the_escaped_call(probe_ref, base_dir: Path) -> None:
    with satchel.load(probe_ref) as fn:
        outcomes, _ = _outcomes(fn, "thickclient:thick", "a", "spin", "b", timeouts=[0.0, 0.5, 0.0])
    before, timed_out, after = outcomes
    assert timed_out["error"] == "CallTimeout" and "did not answer within 0.5s" in timed_out["message"]
    assert json.loads(before["result"])["pid"] == json.loads(after["result"])["pid"], (
        "interrupted, not killed"
    )


@pytest.mark.parametrize("transport", ["shm", "pipe"])
def test_cancelling_the_workers_call_cancels_the_escaped_one(
    probe_ref, base_dir: Path, transport: str
) -> None:
    with satchel.load(probe_ref, transport=transport) as fn:
        first, _ = _outcomes(fn, "thickclient:thick", "a")
        worker_pid = fn.worker_pid
        with pytest.raises(satchel.CallTimeout):
            fn("thickclient:thick", ["spin"], [0.0], timeout=1.0)
        again, _ = _outcomes(fn, "thickclient:thick", "b")
        assert fn.worker_pid == worker_pid, "the worker was interrupted, not killed"
    assert json.loads(again[0]["result"])["pid"] == json.loads(first[0]["result"])["pid"]


def test_outside_a_worker_it_runs_in_process(base_dir: Path) -> None:
    assert satchel.escape("thickclient:thick")("here")["pid"] == os.getpid()
    assert satchel.escape("thickclient:Client.greet")("x") == "client:x"
    with pytest.raises(satchel.EscapeImportError, match="No module named 'nosuchmodule'"):
        satchel.escape("nosuchmodule:fn")("a")
    with pytest.raises(ValueError, match=r"expected 'module:function', got 'thickclient'"):
        satchel.escape("thickclient")
    with pytest.raises(ValueError, match="timeout"):
        satchel.escape("thickclient:thick", timeout=-1)


def test_a_killed_worker_takes_its_busy_escaped_process_with_it(probe_ref, base_dir: Path) -> None:
    with satchel.load(probe_ref) as fn:
        outcomes, _ = _outcomes(fn, "thickclient:thick", "a")
        child, worker_pid = json.loads(outcomes[0]["result"])["pid"], fn.worker_pid
        outcome: list[BaseException] = []

        def spin() -> None:
            try:
                fn("thickclient:thick", ["spin"], [0.0])
            except BaseException as exc:  # noqa: BLE001 - the call's error is what the test checks
                outcome.append(exc)

        caller = threading.Thread(target=spin)
        caller.start()
        wait_until((base_dir / f"spinning-{child}").exists, what="the escaped call to start")
        os.kill(worker_pid, signal.SIGKILL)
        caller.join()
        assert isinstance(outcome[0], satchel.WorkerCrashed)
        assert wait_gone(child), "the escaped process outlived its killed worker"
    assert _shm_segments(worker_pid) == []


def test_under_satchel_serve_it_runs_in_the_servers_environment(probe_ref, base_dir: Path, tmp_path) -> None:
    import httpx

    from tests.conftest import REPO
    from tests.serving.running import ServeProcess

    # thickclient is importable in the server's process only through its own PYTHONPATH
    env = {"PYTHONPATH": os.pathsep.join([str(REPO), str(base_dir)])}
    with ServeProcess([str(probe_ref)], tmp_path / "serve.log", env=env) as server:
        body = {"target": "thickclient:thick", "arguments": ["a"], "timeouts": [0.0]}
        reply = httpx.post(f"{server.url}/v1/functions/probe:invoke", json=body, timeout=120)
        assert reply.status_code == 200, reply.text
        outcome, worker = reply.json()["result"]
        result = json.loads(outcome["result"])
        assert result["executable"] == sys.executable and str(base_dir) in result["path"]
        assert result["ppid"] == int(worker["worker"]) != server.proc.pid
        assert worker["thickclient_here"] == "False"
    assert wait_gone(result["pid"]), "the escaped process outlived the server"


def test_a_caller_in_a_removed_directory_still_starts_workers(
    probe_ref, base_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    monkeypatch.syspath_prepend("")  # "" means the current directory, which no longer exists
    with satchel.load(probe_ref) as fn:
        outcomes, _ = _outcomes(fn, "thickclient:thick", "a")
    assert "" not in json.loads(outcomes[0]["result"])["path"]


def test_from_a_conda_environments_worker(store: str, base_dir: Path, conda_channel) -> None:
    """The worker runs in a conda prefix with its own interpreter; the escape still reaches the caller's."""
    env = satchel.Environment(conda=["humanize", "fastavro"], channels=[str(conda_channel.path)])
    in_conda = satchel.function(escaping.probe.func, environment=env)
    with satchel.load(in_conda.export(name="probe-conda", store=store, progress=False)) as fn:
        outcomes, worker = _outcomes(fn, "thickclient:thick", "a")
    assert (Path(worker["executable"]).parent.parent / "conda-meta").is_dir()
    assert json.loads(outcomes[0]["result"])["executable"] == sys.executable
