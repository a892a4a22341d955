"""`--backend ray` with `--workers 1:2`: Ray Serve really adds a replica under concurrent HTTP load, loses
no request while doing so, and drops back to one replica once the load stops. The replicas reserve half a
CPU each (`replica_cpus`), so both fit on the shared local Ray (`ray.init(num_cpus=2)`)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from satchel.serving.backends import ServeOptions, get_backend
from tests.functions import textutil
from tests.ray_session import ray_session  # noqa: F401 - the shared local Ray
from tests.serving.ray_resources import reserved_cpus, wait_until_idle
from tests.serving.running import free_socket
from tests.waiting import wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::DeprecationWarning:ray"),
]  # Ray vs pydantic

CLIENTS = 6  # concurrent callers: 4 in the replica (its max_ongoing_requests), 2 queued at the handle
NAP_SECONDS = 0.2  # each call sleeps this long in the worker, so calls overlap
REPLICA_CPUS = 0.5


def _free_port() -> int:
    with free_socket() as sock:
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, ray_session: str) -> Iterator[str]:  # noqa: F811
    """`nap` on Ray Serve between 1 and 2 replicas, scaling down after one idle second."""
    store = (tmp_path_factory.mktemp("store") / "s").as_uri()
    ref = str(textutil.nap.export(name="nap", store=store))
    wait_until_idle()  # CPUs are counted below: nothing of an earlier test may still hold one
    backend = get_backend("ray")
    options = ServeOptions(port=_free_port(), workers=(1, 2), scale_down_after=1.0, replica_cpus=REPLICA_CPUS)
    url = backend.start([ref], options)
    try:
        yield url
    finally:
        backend.stop()


def replica_states() -> dict[str, int]:
    """nap's replicas by state (RUNNING, STARTING, STOPPING, ...), as the Serve controller reports them."""
    from ray import serve

    from satchel.serving.backends.ray import APP, deployment_name

    status = serve.status().applications[APP].deployments[deployment_name("nap")]
    return {str(state): int(n) for state, n in status.replica_states.items() if n}


def running_replicas() -> int:
    return replica_states().get("RUNNING", 0)


@dataclass
class Load:
    """Callers posting `nap` in a loop from threads until stopped; every answer other than 200 is kept."""

    url: str
    done: threading.Event = field(default_factory=threading.Event)
    answered: int = 0
    failures: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._threads = [threading.Thread(target=self._call, daemon=True) for _ in range(CLIENTS)]

    def _call(self) -> None:
        with httpx.Client(timeout=60) as client:
            while not self.done.is_set():
                try:
                    response = client.post(
                        f"{self.url}/v1/functions/nap:invoke", json={"seconds": NAP_SECONDS}
                    )
                    failure = (
                        None if response.status_code == 200 else f"{response.status_code}: {response.text}"
                    )
                except httpx.HTTPError as exc:
                    failure = repr(exc)
                with self._lock:
                    if failure is None:
                        self.answered += 1
                    else:
                        self.failures.append(failure)

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        for thread in self._threads:
            thread.join(timeout=90)
        assert not any(thread.is_alive() for thread in self._threads), "a caller hung"


def test_load_adds_a_replica_without_failed_requests_and_idleness_removes_it(served: str) -> None:
    assert running_replicas() == 1  # initial_replicas: MIN, or 1
    one_replica = reserved_cpus()
    with Load(served) as load:
        wait_until(lambda: running_replicas() > 1, timeout=60, what="a second RUNNING replica of nap")
        wait_until(
            lambda: reserved_cpus() - one_replica == REPLICA_CPUS,
            timeout=30,
            what=f"the second replica to hold {REPLICA_CPUS} CPU",
        )
    assert load.failures == []
    assert load.answered > 0
    # the second replica stops gracefully (Serve gives it up to 20 s): wait until it is gone, not just
    # no longer RUNNING, before its CPU can be back
    wait_until(lambda: replica_states() == {"RUNNING": 1}, timeout=120, what="nap back to one replica")
    wait_until(lambda: reserved_cpus() == one_replica, timeout=60, what="the second replica's CPU back")
    answer = httpx.post(f"{served}/v1/functions/nap:invoke", json={"seconds": 0}, timeout=30)
    assert answer.status_code == 200 and answer.json() == {"result": 0.0}
