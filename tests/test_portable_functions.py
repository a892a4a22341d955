"""End to end: @function -> bundle in a store -> isolated worker -> proxy, with real uv environments."""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import json
import os
import pickle
import pydoc
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

import satchel
from satchel.packager.bundle import publish, read_bundle
from tests.functions import textutil
from tests.waiting import pid_gone, wait_gone


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    return (tmp_path_factory.mktemp("store") / "s").as_uri()


@pytest.fixture(scope="module")
def describe_ref(store: str):
    return textutil.describe.export(name="describe", store=store)


@pytest.fixture(scope="module")
def plain_refs(store: str) -> dict:
    names = ["add", "scale", "fail", "crash", "pid", "nap", "whereami"]
    return {name: getattr(textutil, name).export(name=name, store=store) for name in names}


def test_the_contract(describe_ref) -> None:
    assert importlib.util.find_spec("humanize") is None, "the caller must not have humanize"
    fn = satchel.load(describe_ref)
    try:
        assert fn(1_200_000) == "1.2 million"
        assert fn(3_000_000, suffix="!") == "3.0 million!"
        worker = fn.worker_pid
        assert worker is not None and worker != os.getpid()
    finally:
        fn.close()
    assert wait_gone(worker)


def test_reference_forms(describe_ref, store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SATCHEL_STORE", store)
    assert str(describe_ref) == f"{store}#describe:{describe_ref.version}@sha256:{describe_ref.digest}"
    for ref in (str(describe_ref), f"{store}#describe", "describe", f"describe:{describe_ref.version}"):
        with satchel.load(ref) as fn:
            assert fn(2_000_000) == "2.0 million", ref


def test_versions_increment(store: str) -> None:
    first = textutil.add.export(name="adder", store=store)
    second = textutil.add.export(name="adder", store=store)
    assert (first.name, second.version) == ("adder", first.version + 1)
    bundle, _ = read_bundle(f"{store}#adder")
    assert bundle.version == second.version


def test_metadata_and_signature(describe_ref) -> None:
    with satchel.load(describe_ref) as fn:
        assert str(inspect.signature(fn)) == "(n: int, suffix: str = '') -> str"
        assert fn.__doc__ == "Say a number in words."
        text = pydoc.render_doc(fn, renderer=pydoc.plaintext)  # help(fn): the function, not the proxy
        assert text.splitlines()[2:4] == [
            "describe(n: int, suffix: str = '') -> str",
            "    Say a number in words.",
        ]
        assert "LoadedFunction" not in text and "worker_pids" not in text
        meta = fn.metadata
        assert meta["format_version"] == 1
        assert meta["function"]["doc"] == "Say a number in words."
        assert fn.schema["response"] == "string"
        assert [f["name"] for f in fn.schema["request"]["fields"]] == ["n", "suffix"]
        names = {p["name"]: p for p in meta["environment"]["packages"]}
        assert names["humanize"]["version"] == "4.12.1"
        assert len(names["humanize"]["sha256"]) == 64
        assert "fastavro" in names, "the worker's runtime requirement is in the lock"
        prov = meta["provenance"]
        assert prov["satchel_version"] == satchel.__version__ and prov["python"] and prov["host"]


def test_call_options_are_checked_like_arguments(plain_refs) -> None:
    with satchel.load(plain_refs["add"]) as fn:
        for bad, expected in (("x", "number, got str 'x'"), (True, "got bool"), (-1, "0 or more seconds")):
            with pytest.raises(
                satchel.ArgumentError, match=f"option timeout=: expected .*{expected}"
            ) as info:
                fn(1, 2, timeout=bad)
            assert info.value.parameter == "timeout"
            with pytest.raises(satchel.ArgumentError, match="option timeout="):
                asyncio.run(fn.acall(1, 2, timeout=bad))
            with pytest.raises(satchel.ArgumentError, match="option timeout="):
                list(fn.map([(1, 2)], timeout=bad))
        assert fn(1, 2, timeout=30) == 3  # the worker never saw the bad calls


def test_remote_error_keeps_worker(plain_refs) -> None:
    with satchel.load(plain_refs["fail"]) as fn:
        pid = fn.worker_pid
        with pytest.raises(satchel.RemoteError) as info:
            fn("boom")
        err = info.value
        assert err.type_name == "ValueError" and err.message == "boom"
        assert "raise ValueError(message)" in err.remote_traceback
        with pytest.raises(satchel.RemoteError, match="again"):
            fn("again")
        assert fn.worker_pid == pid


@pytest.mark.parametrize(
    ("args", "kwargs", "expected"),
    [
        (("x", 2.0), {}, ["parameter 'values'", "list", "str"]),
        (([1.0], "2"), {}, ["parameter 'factor'", "float", "str"]),
        (([1.0],), {}, ["factor"]),
        (([1.0], 2.0), {"bogus": 1}, ["bogus"]),
        (([1.0, "a"], 2.0), {}, ["values", "float", "str"]),
    ],
)
def test_bad_arguments_rejected_before_sending(plain_refs, args, kwargs, expected) -> None:
    with satchel.load(plain_refs["scale"]) as fn:
        pid = fn.worker_pid
        with pytest.raises(satchel.ArgumentError) as info:
            fn(*args, **kwargs)
        for fragment in expected:
            assert fragment in str(info.value)
        assert fn([1.0, 2.0], 3.0, offset=1.0) == [4.0, 7.0]
        assert fn.worker_pid == pid


@pytest.mark.parametrize(
    ("how", "status"), [("exit", 7), ("kill", -signal.SIGKILL), ("segfault", -signal.SIGSEGV)]
)
def test_worker_crash(plain_refs, how: str, status: int) -> None:
    with satchel.load(plain_refs["crash"]) as fn:
        first = fn.worker_pid
        with pytest.raises(satchel.WorkerCrashed) as info:
            fn(how)
        assert info.value.exit_status == status
        assert f"about to crash by {how}" in info.value.stderr_tail
        assert wait_gone(first)
        again = fn("none")
        assert again != first and fn.worker_pid == again


def test_timeout_restarts_worker(plain_refs) -> None:
    with satchel.load(plain_refs["nap"]) as fn:
        first = fn.worker_pid
        with pytest.raises(satchel.CallTimeout):
            fn(60.0, timeout=0.5)
        assert wait_gone(first)
        assert fn(0.0) == 0.0
        assert fn.worker_pid != first


def test_worker_isolated_from_caller(plain_refs) -> None:
    with satchel.load(plain_refs["whereami"]) as fn:
        info = fn()
    assert info["version"].startswith("3.11")
    assert info["executable"] != sys.executable
    assert info["pytest"] == "False" and info["click"] == "False"


def test_threads_and_asyncio(plain_refs) -> None:
    with satchel.load(plain_refs["add"]) as fn:
        results: dict[int, float] = {}

        def work(i: int) -> None:
            for j in range(25):
                results[i * 100 + j] = fn(float(i), float(j))

        threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == {i * 100 + j: float(i + j) for i in range(6) for j in range(25)}

        async def many() -> list[float]:
            return await asyncio.gather(*(fn.acall(float(i), 0.5) for i in range(20)))

        assert asyncio.run(many()) == [i + 0.5 for i in range(20)]


def test_pickles_to_its_reference(plain_refs) -> None:
    with satchel.load(plain_refs["add"]) as fn:
        data = pickle.dumps(fn)
        assert str(fn.ref).encode() in data
        clone = pickle.loads(data)
        try:
            assert clone(1.0, 2.0) == 3.0 and clone.worker_pid != fn.worker_pid
        finally:
            clone.close()


def test_pickled_proxy_in_another_process(plain_refs) -> None:
    with satchel.load(plain_refs["add"]) as fn:
        blob = pickle.dumps(fn)
    code = "import pickle, sys; fn = pickle.loads(sys.stdin.buffer.read()); print(fn(40.0, 2.0)); fn.close()"
    out = subprocess.run(
        [sys.executable, "-c", code], input=blob, capture_output=True, check=True, timeout=120
    )
    assert out.stdout.decode().strip() == "42.0"


def test_closed_function_refuses_calls(plain_refs) -> None:
    fn = satchel.load(plain_refs["add"])
    fn.close()
    with pytest.raises(satchel.SatchelError, match="closed"):
        fn(1.0, 2.0)


def test_no_orphans_when_caller_is_killed(plain_refs, tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys, satchel
        fn = satchel.load({str(plain_refs["nap"])!r})
        print(fn.worker_pid, flush=True)
        fn(3600.0)
        """
    )
    caller = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    worker = int(caller.stdout.readline())
    assert not pid_gone(worker)
    caller.kill()
    caller.wait()
    assert wait_gone(worker), "the worker outlived its caller"


def test_bind_artifacts(store: str) -> None:
    bound = textutil.predict.bind(weights=[2.0, -1.0], bias=0.5)
    assert list(inspect.signature(bound).parameters) == ["rows"]
    assert bound([[1.0, 1.0]]) == [1.5]
    ref = bound.export(name="linear", store=store)
    with satchel.load(ref) as fn:
        assert [f["name"] for f in fn.schema["request"]["fields"]] == ["rows"]
        assert list(inspect.signature(fn).parameters) == ["rows"]
        assert [a["name"] for a in fn.metadata["artifacts"]] == ["bias", "weights"]
        assert fn.metadata["function"]["bound"] == ["bias", "weights"]
        assert fn([[1.0, 2.0], [3.0, 0.0]]) == [0.5, 6.5]
    with pytest.raises(TypeError, match="no parameter 'nope'"):
        textutil.predict.bind(nope=1)
    with pytest.raises(TypeError, match="already bound"):
        bound.bind(bias=1.0)


@pytest.mark.parametrize("version", ["3.9", "3.12", "3.13"])
def test_other_python_versions(store: str, version: str) -> None:
    """The worker (and the bindings it ships) runs on every Python the machine has, 3.9 and up."""
    if version not in _available():
        pytest.fail(f"this machine kind is expected to have Python {version}; found {_available()}")
    fn_v = satchel.function(textutil.whereami.func, environment=satchel.Environment(python=version))
    with satchel.load(fn_v.export(name=f"where{version.replace('.', '')}", store=store)) as fn:
        assert fn()["version"].startswith(version + ".")
    scaled = satchel.function(textutil.scale.func, environment=satchel.Environment(python=version))
    with satchel.load(scaled.export(name=f"scale{version.replace('.', '')}", store=store)) as fn:
        assert fn([1.0, 2.5], 2.0, offset=0.5) == [2.5, 5.5]


def _available() -> list[str]:
    from satchel.packager.interpreters import available_versions

    return available_versions()


def test_missing_python_is_a_clear_error(plain_refs) -> None:
    # A bundle made on a machine with a Python this one lacks: same lock, another interpreter version.
    bundle, store = read_bundle(plain_refs["add"])
    doc = json.loads(json.dumps(bundle.doc))
    doc["environment"]["python"] = "3.99"
    ref = publish(store, doc)
    with pytest.raises(satchel.InterpreterNotFound) as info:
        satchel.load(ref)
    message = str(info.value)
    assert "3.99" in message and "3.11" in message


def test_unresolvable_environment_leaves_store_unchanged(tmp_path: Path) -> None:
    store = (tmp_path / "s").as_uri()
    fn = satchel.function(textutil.add.func, environment=satchel.Environment(pypi=["humanize==99.0.0"]))
    with pytest.raises(satchel.EnvironmentResolutionError, match="humanize"):
        fn.export(name="broken", store=store)
    assert not (tmp_path / "s" / "bundles").exists()


def test_missing_and_bad_references(store: str) -> None:
    with pytest.raises(satchel.BundleNotFound, match="nothing-here"):
        satchel.load(f"{store}#nothing-here")
    with pytest.raises(satchel.BundleNotFound, match="versions there"):
        textutil.add.export(name="one", store=store)
        satchel.load(f"{store}#one:99")
    with pytest.raises(satchel.UnknownStoreScheme, match="gopher"):
        satchel.load("gopher://x/y#add")
    with pytest.raises(ValueError, match="names a store but no bundle"):
        satchel.load(store)


def test_corrupt_blob_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SATCHEL_HOME", str(tmp_path / "home"))  # an empty cache: the blob is fetched
    root = tmp_path / "s"
    ref = textutil.add.export(name="add", store=str(root))
    bundle, _ = read_bundle(ref)
    code = bundle.doc["code"]["blob"]
    blob = root / "blobs" / "sha256" / code[:2] / code
    blob.chmod(0o644)
    blob.write_bytes(b"not the code")
    with pytest.raises(satchel.BlobCorrupted) as info:
        satchel.load(ref)
    assert code in str(info.value) and "code package" in str(info.value)


def test_function_from_a_script(tmp_path: Path) -> None:
    """A function and a class defined in a script run as __main__ travel under the script's name."""
    script = tmp_path / "train.py"
    script.write_text(
        textwrap.dedent(
            """
            from dataclasses import dataclass
            import sys
            import satchel

            @dataclass
            class Scaler:
                factor: float

            @dataclass
            class Out:
                value: float
                label: str

            @satchel.function(environment=satchel.Environment(python="3.11"))
            def apply(scaler, x: float) -> Out:
                return Out(scaler.factor * x, type(scaler).__module__)

            if __name__ == "__main__":
                print(apply.bind(scaler=Scaler(3.0)).export(name="apply", store=sys.argv[1]))
            """
        )
    )
    store = (tmp_path / "store").as_uri()
    out = subprocess.run(
        [sys.executable, str(script), store], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )
    assert out.returncode == 0, out.stderr
    with satchel.load(out.stdout.strip()) as fn:
        assert fn.metadata["function"]["module"] == "train"
        assert fn.schema["response"]["python"] == "train:Out"
        assert fn(2.0) == {"value": 6.0, "label": "train"}


def _readme_example() -> str:
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    return text.split("```python\n", 1)[1].split("```", 1)[0]


def test_readme_example_runs_as_a_script(tmp_path: Path) -> None:
    """The README's first example, saved as a script and run: the worker must not re-run its export."""
    example = _readme_example()
    assert "describe.export(" in example and "satchel.load(ref)" in example
    store = (tmp_path / "store").as_uri()
    script = tmp_path / "example.py"
    script.write_text(example.replace("file:///tmp/store", store))
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    with satchel.load(f"{store}#describe") as fn:
        assert fn(1_200_000) == "1.2 million"


def test_script_top_level_runs_only_in_the_exporting_process(tmp_path: Path) -> None:
    """A script's other top-level code (training, exporting, calling) does not run in the worker; the
    definitions the function needs do, and tracebacks point at the script's own lines."""
    script = tmp_path / "train_and_serve.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys
            import satchel

            with open(sys.argv[2], "a") as log:  # stands for ten minutes of training
                log.write("top level ran\\n")

            FACTOR = 3; print("side effect")

            def helper(x):
                return x * FACTOR

            @satchel.function(environment=satchel.Environment(python="3.11"))
            def triple(x: int) -> int:
                if x < 0:
                    raise ValueError("negative")
                return helper(x)

            triple.__doc__ = "Triple it."
            ref = triple.export(name="triple", store=sys.argv[1])
            with satchel.load(ref) as fn:
                print(fn(5))
            """
        )
    )
    store = (tmp_path / "store").as_uri()
    log = tmp_path / "log.txt"
    out = subprocess.run(
        [sys.executable, str(script), store, str(log)], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["side", "effect", "15"]
    assert log.read_text() == "top level ran\n"  # once: in the exporting process only
    with satchel.load(f"{store}#triple") as fn:
        assert fn(7) == 21
        with pytest.raises(satchel.RemoteError) as info:
            fn(-1)
    raise_line = script.read_text().splitlines().index('        raise ValueError("negative")') + 1
    assert f'train_and_serve.py", line {raise_line}, in triple' in info.value.remote_traceback


def test_rehydrates_with_the_package_index_unreachable(describe_ref, tmp_path: Path) -> None:
    """Package files come from the bundle's store, never from an index, when an environment is built."""
    dead = "http://127.0.0.1:9"
    env = {
        **os.environ,
        "SATCHEL_HOME": str(tmp_path / "home"),  # empty caches: the environment must be built now
        "UV_INDEX_URL": dead + "/simple",
        "UV_DEFAULT_INDEX": dead + "/simple",
        "PIP_INDEX_URL": dead + "/simple",
        "HTTP_PROXY": dead,
        "HTTPS_PROXY": dead,
        "ALL_PROXY": dead,
    }
    code = f"import satchel\nwith satchel.load({str(describe_ref)!r}) as fn: print(fn(1_200_000))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1.2 million"
    assert any((tmp_path / "home" / "envs").iterdir())


def test_workers_stop_when_the_caller_exits_without_closing(plain_refs) -> None:
    code = f"import satchel\nfn = satchel.load({str(plain_refs['pid'])!r})\nprint(fn())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert wait_gone(int(out.stdout))
