"""Graceful shutdown: asked to stop, the server refuses new work (503), finishes what is in flight, then
stops its workers."""

from __future__ import annotations

import threading

import httpx
import pytest

from satchel.serving import create_app
from satchel.serving.drain import DrainingServer
from tests.functions import textutil
from tests.serving.running import RunningServer
from tests.waiting import wait_gone, wait_until


class DrainingRunningServer(RunningServer):
    """RunningServer with the DrainingServer that `satchel serve` runs."""

    def __init__(self, app) -> None:
        super().__init__(app)
        self.server = DrainingServer(self.server.config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)


@pytest.fixture(scope="module")
def nap_ref(tmp_path_factory: pytest.TempPathFactory) -> str:
    store = (tmp_path_factory.mktemp("store") / "s").as_uri()
    return textutil.nap.export(name="nap", store=store)


@pytest.mark.slow
def test_stop_drains_in_flight_requests_then_stops_the_workers(nap_ref) -> None:
    app = create_app([nap_ref], workers=1)  # loaded by the app: its shutdown stops the worker
    nap = app.state.hosting.functions["nap"].fn
    running = DrainingRunningServer(app)
    with running:
        pid = wait_until(lambda: nap.worker_pids[0], timeout=30, what="the nap worker")
        answers: list[httpx.Response] = []

        def in_flight() -> None:
            answers.append(
                httpx.post(f"{running.url}/v1/functions/nap:invoke", json={"seconds": 3}, timeout=60)
            )

        caller = threading.Thread(target=in_flight)
        caller.start()
        wait_until(lambda: app.state.drain.in_flight == 1, what="the nap request counted in flight")
        running.server.should_exit = True  # what SIGTERM does

        ready = wait_until(
            lambda: (r := httpx.get(f"{running.url}/readyz", timeout=10)).status_code == 503 and r,
            what="/readyz to answer 503",
        )
        assert ready.json()["status"] == "draining"
        refused = httpx.post(f"{running.url}/v1/functions/nap:invoke", json={"seconds": 0}, timeout=10)
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert refused.json()["type"].endswith("/draining")
        assert httpx.get(f"{running.url}/healthz", timeout=10).status_code == 200  # the process still answers

        caller.join(timeout=60)
        assert len(answers) == 1 and answers[0].status_code == 200, answers and answers[0].text
        assert answers[0].json() == {"result": 3.0}
        running.thread.join(timeout=60)
        assert not running.thread.is_alive(), "the server did not stop once drained"
    assert wait_gone(pid, timeout=30), f"worker {pid} still runs after the server stopped"
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{running.url}/healthz", timeout=5)


def test_stop_without_requests_in_flight_is_immediate(nap_ref) -> None:
    app = create_app([nap_ref], workers=1)
    running = DrainingRunningServer(app)
    with running:
        pid = wait_until(
            lambda: app.state.hosting.functions["nap"].fn.worker_pids[0], timeout=30, what="worker"
        )
        assert httpx.get(f"{running.url}/readyz", timeout=10).status_code == 200
        running.server.should_exit = True
        running.thread.join(timeout=30)
        assert not running.thread.is_alive()
    assert wait_gone(pid, timeout=30)
    assert app.state.drain.draining and app.state.drain.in_flight == 0


@pytest.mark.slow
def test_stop_right_after_cancelling_a_job_stuck_in_c(nap_ref) -> None:
    """A cancelled call still occupies its worker until the worker answers or is killed; stopping the server
    meanwhile must neither hang nor leave the worker behind."""
    app = create_app([nap_ref], workers=1)
    nap = app.state.hosting.functions["nap"].fn
    running = DrainingRunningServer(app)
    with running:
        pid = wait_until(lambda: nap.worker_pids[0], timeout=30, what="the nap worker")
        job = httpx.post(f"{running.url}/v1/functions/nap/jobs", json={"seconds": 120}, timeout=10).json()
        wait_until(
            lambda: httpx.get(f"{running.url}/v1/jobs/{job['id']}", timeout=10).json()["state"] == "running",
            what="the job running",
        )
        assert httpx.delete(f"{running.url}/v1/jobs/{job['id']}", timeout=10).status_code == 200
        running.server.should_exit = True
        running.thread.join(timeout=60)
        assert not running.thread.is_alive(), "the server did not stop after a job was cancelled"
    assert wait_gone(pid, timeout=30), f"worker {pid} still runs after the server stopped"
