"""`satchel serve --backend ray`: the gateway and the functions as Ray Serve deployments on a local Ray
(`ray.init(num_cpus=2)`, shared by the test process), called over real HTTP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
from click.testing import CliRunner

from satchel.serving import serve
from satchel.serving.backends import ServeOptions, get_backend
from tests.functions import textutil
from tests.ray_session import ray_session  # noqa: F401 - the shared local Ray
from tests.serving.ray_resources import reserved_cpus, wait_until_idle
from tests.serving.running import free_socket, healthy
from tests.waiting import wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::DeprecationWarning:ray"),
]  # Ray vs pydantic


def _free_port() -> int:
    with free_socket() as sock:
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    store = (tmp_path_factory.mktemp("store") / "s").as_uri()
    return {name: str(getattr(textutil, name).export(name=name, store=store)) for name in ("add", "fail")}


def test_the_command_line(exported: dict[str, str], ray_session: str) -> None:  # noqa: F811
    """`satchel serve --backend ray --ray-address` from another process, onto the same cluster. First in
    the module, before `served` puts Serve up there (the cluster has one Serve, which it stops).
    `--replica-cpus 0.5` reaches Ray: the one replica of `add` holds half a CPU."""
    port = _free_port()
    wait_until_idle()  # CPUs are counted below: nothing of an earlier test may still hold one
    before = reserved_cpus()
    proc = subprocess.Popen(
        [sys.executable, "-m", "satchel", "serve", exported["add"], "--backend", "ray"]
        + ["--ray-address", ray_session, "--port", str(port), "--workers", "1:1", "--replica-cpus", "0.5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "RAY_ADDRESS": ""},
    )
    try:
        url = f"http://127.0.0.1:{port}"
        seen = []
        for line in proc.stdout:  # up to the line saying it serves, or the end of a failed start
            seen.append(line)
            if f" at {url} " in line:
                break
        assert proc.poll() is None, "".join(seen)
        assert healthy(url)
        response = httpx.post(f"{url}/v1/functions/add:invoke", json={"a": 2, "b": 3}, timeout=30)
        assert response.json() == {"result": 5.0}
        wait_until(lambda: reserved_cpus() - before == 0.5, timeout=30, what="add's replica holding 0.5 CPU")
    finally:
        proc.send_signal(signal.SIGINT)
        output = proc.communicate(timeout=120)[0]
    assert proc.returncode == 0, output


@pytest.fixture(scope="module")
def served(exported: dict[str, str], ray_session: str) -> Iterator[str]:  # noqa: F811
    backend = get_backend("ray")
    url = backend.start(
        list(exported.values()),
        ServeOptions(port=_free_port(), workers=(1, 2), function_workers={"fail": (1, 1)}),
    )
    try:
        yield url
    finally:
        backend.stop()


def test_invoke_answers(served: str) -> None:
    response = httpx.post(f"{served}/v1/functions/add:invoke", json={"a": 1, "b": 2.5}, timeout=30)
    assert response.status_code == 200, response.text
    assert response.json() == {"result": 3.5}


def test_bad_argument_is_a_400_naming_the_parameter(served: str) -> None:
    response = httpx.post(f"{served}/v1/functions/add:invoke", json={"a": "one", "b": 2}, timeout=30)
    assert response.status_code == 400
    problem = response.json()
    assert problem["parameter"] == "a" and problem["function"] == "add"


def test_a_raising_function_is_a_500_with_its_remote_error(served: str) -> None:
    response = httpx.post(f"{served}/v1/functions/fail:invoke", json={"message": "no luck"}, timeout=30)
    assert response.status_code == 500
    assert "no luck" in response.text


def test_probes_and_openapi(served: str) -> None:
    assert httpx.get(f"{served}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{served}/readyz", timeout=30)
    assert ready.status_code == 200 and ready.json()["workers"] == {"add": 1, "fail": 1}
    paths = httpx.get(f"{served}/openapi.json", timeout=30).json()["paths"]
    assert "/v1/functions/add:invoke" in paths and "/v1/functions/fail:invoke" in paths
    unknown = httpx.post(f"{served}/v1/functions/nope:invoke", json={}, timeout=30)
    assert unknown.status_code == 404 and unknown.json()["functions"] == ["add", "fail"]


def test_workers_become_replicas_or_ray_autoscaling() -> None:
    from satchel.serving.backends.ray import _scaling

    assert _scaling((2, 2)) == {"num_replicas": 2}
    auto = _scaling((0, 4), scale_down_after=30)["autoscaling_config"]
    assert (auto["min_replicas"], auto["initial_replicas"], auto["max_replicas"]) == (0, 1, 4)
    assert auto["downscale_delay_s"] == 30


def test_function_workers_must_name_a_served_function(exported: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="function workers given for 'nope', which is not served"):
        get_backend("ray").start([exported["add"]], ServeOptions(function_workers={"nope": (1, 1)}))


@pytest.mark.parametrize("bad", [-1, "half", True])
def test_replica_cpus_must_be_a_number_of_cpus(exported: dict[str, str], bad: object) -> None:
    with pytest.raises(ValueError, match=r"replica_cpus .*: expected a number of CPUs >= 0"):
        get_backend("ray").start([exported["add"]], ServeOptions(replica_cpus=bad))  # type: ignore[arg-type]


def test_replica_cpus_is_refused_by_the_local_backend(exported: dict[str, str]) -> None:
    from satchel.serving.cli import serve_command

    result = CliRunner().invoke(serve_command, [exported["add"], "--replica-cpus", "0.5"])
    assert result.exit_code == 2 and "--replica-cpus" in result.output and "--backend ray" in result.output
    result = CliRunner().invoke(serve_command, [exported["add"], "--backend", "ray", "--replica-cpus", "-1"])
    assert result.exit_code == 2 and "--replica-cpus" in result.output
    with pytest.raises(ValueError, match="replica_cpus applies to a cluster backend"):
        serve([exported["add"]], replica_cpus=0.5)


def test_a_missing_ray_is_a_clear_error() -> None:
    code = "import sys; sys.modules['ray'] = None\nfrom satchel.serving.backends import get_backend\nget_backend('ray')"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "the ray serving backend needs ray" in proc.stderr and "pip install 'satchel[ray]'" in proc.stderr
