"""Autoscaling: the policy alone, then real servers scaling up under load, down when idle, from zero."""

from __future__ import annotations

import logging
import re

import httpx
import pytest

from satchel.runtime.pool import WorkerPool
from satchel.serving import create_app
from satchel.serving.autoscale import Policy
from tests.serving.running import RunningServer
from tests.waiting import wait_until

# -- the policy ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "in_flight", "queued", "wanted"),
    [
        (1, 0, 0, 1),  # idle: MIN
        (1, 1, 0, 1),
        (1, 1, 2, 3),  # queued calls: one worker each
        (2, 2, 9, 4),  # capped at MAX
        (0, 0, 1, 1),  # from zero
        (6, 0, 0, 4),  # above MAX: down to it at once
    ],
)
def test_policy_scales_up_on_in_flight_and_queued_calls(current, in_flight, queued, wanted) -> None:
    policy = Policy(1, 4, scale_down_after=60.0)
    assert policy.desired(current=current, in_flight=in_flight, queued=queued, idle_seconds=[]) == wanted


def test_policy_target_per_worker() -> None:
    policy = Policy(0, 8, target_per_worker=4)
    assert policy.desired(current=0, in_flight=0, queued=9, idle_seconds=[]) == 3


def test_policy_scales_down_only_workers_idle_long_enough() -> None:
    policy = Policy(1, 4, scale_down_after=30.0)
    # 4 workers, 1 busy: 3 idle, for 45s, 31s and 5s: two of them may stop
    assert policy.desired(current=4, in_flight=1, queued=0, idle_seconds=[45.0, 31.0, 5.0]) == 2
    assert policy.desired(current=4, in_flight=1, queued=0, idle_seconds=[29.0, 5.0, 1.0]) == 4
    assert policy.desired(current=2, in_flight=0, queued=0, idle_seconds=[99.0, 99.0]) == 1  # MIN 1
    assert (
        Policy(0, 2, scale_down_after=30.0).desired(
            current=2, in_flight=0, queued=0, idle_seconds=[99.0, 99.0]
        )
        == 0
    )


def test_idle_timing_follows_the_pool_clock() -> None:
    class Worker:
        alive, pid = True, 1
        unsettled, end_cause = False, None  # no call of its ever times out

        def ask_to_stop(self) -> None:
            self.alive = False

        def stop(self, timeout: float = 0.0) -> None:
            self.alive = False

    pool = WorkerPool(lambda index: Worker(), size=2, name="fake")
    pool.start()
    a, b = pool.acquire(), pool.acquire()
    pool.release(a)
    pool.release(b)
    policy = Policy(1, 2, scale_down_after=10.0)
    soon = pool.idle_seconds(now=max(a.idle_since, b.idle_since) + 5.0)
    later = pool.idle_seconds(now=max(a.idle_since, b.idle_since) + 11.0)
    assert policy.desired(current=2, in_flight=0, queued=0, idle_seconds=soon) == 2
    assert policy.desired(current=2, in_flight=0, queued=0, idle_seconds=later) == 1
    pool.close()


@pytest.mark.parametrize(
    "bad",
    [
        dict(min_workers=2, max_workers=1),
        dict(min_workers=0, max_workers=0),
        dict(min_workers=-1, max_workers=1),
    ],
)
def test_policy_rejects_bad_bounds(bad) -> None:
    with pytest.raises(ValueError, match="MIN <= MAX"):
        Policy(**bad)


# -- real servers -------------------------------------------------------------------------------------


def metric(client: httpx.Client, name: str, **labels: str) -> float:
    """The value of one sample of /metrics (0 when absent)."""
    text = client.get("/metrics").text
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        m = re.match(r"^(\w+)\{(.*)\} (\S+)$", line)
        if m and m.group(1) == name and ",".join(sorted(m.group(2).split(","))) == wanted:
            return float(m.group(3))
    return 0.0


class Lines(logging.Handler):
    """The messages logged to one logger (whatever other tests did to its propagation)."""

    def __init__(self, name: str) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []
        self.logger = logging.getLogger(name)

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def __enter__(self) -> Lines:
        self.level_before = self.logger.level
        self.logger.setLevel(logging.INFO)
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self)
        self.logger.setLevel(self.level_before)


@pytest.mark.slow
def test_scales_up_under_load_then_back_to_min_when_idle(refs) -> None:
    app = create_app([refs["nap"]], workers="1:3", scale_down_after=0.5)
    with (
        Lines("satchel.serving.autoscale") as log,
        RunningServer(app) as server,
        httpx.Client(base_url=server.url, timeout=60) as client,
    ):
        assert metric(client, "satchel_workers", function="nap") == 1
        jobs = [client.post("/v1/functions/nap/jobs", json={"seconds": 3.0}).json()["id"] for _ in range(3)]
        wait_until(
            lambda: metric(client, "satchel_workers", function="nap") == 3, timeout=30, what="three workers"
        )
        for job in jobs:
            wait_until(
                lambda job=job: client.get(f"/v1/jobs/{job}").json()["state"] == "succeeded",
                timeout=60,
                what=f"job {job}",
            )
        wait_until(
            lambda: metric(client, "satchel_workers", function="nap") == 1, timeout=30, what="back to one"
        )
        assert metric(client, "satchel_scale_events_total", function="nap", direction="up") >= 1
        wait_until(
            lambda: metric(client, "satchel_scale_events_total", function="nap", direction="down") >= 1,
            what="the scale-down event",
        )
        assert any(
            re.match(r"scaled nap up from 1 to [23] workers \(1 in flight, [12] queued\)", line)
            for line in log.lines
        ), log.lines
        wait_until(  # the last scale-down is logged once decided, which may follow the gauge by a moment
            lambda: any(
                line.startswith("scaled nap down from") and " to 1 workers" in line for line in log.lines
            ),
            what="the scale-down to one logged",
        )
        assert client.post("/v1/functions/nap:invoke", json={"seconds": 0.0}).json() == {"result": 0.0}


@pytest.mark.slow
def test_min_zero_cold_start_says_so_once(refs) -> None:
    app = create_app([refs["add"]], workers="0:2", scale_down_after=600.0)
    with RunningServer(app) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        assert metric(client, "satchel_workers", function="add") == 0
        assert client.get("/readyz").status_code == 200  # scaled to zero on purpose: ready to start one
        first = client.post("/v1/functions/add:invoke", json={"a": 1, "b": 2})
        assert first.status_code == 200 and first.json() == {"result": 3.0}
        assert int(first.headers["x-satchel-cold-start"]) >= 0
        second = client.post("/v1/functions/add:invoke", json={"a": 2, "b": 2})
        assert second.status_code == 200 and "x-satchel-cold-start" not in second.headers
        assert metric(client, "satchel_workers", function="add") == 1


@pytest.mark.slow
def test_crash_during_a_request_is_5xx_then_a_restart(refs) -> None:
    app = create_app([refs["crash"]], workers=1)
    with RunningServer(app) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        r = client.post("/v1/functions/crash:invoke", json={"how": "exit"})
        assert r.status_code == 502 and r.json()["type"].endswith("worker-crashed")
        assert "worker of crash died" in r.json()["detail"]
        assert metric(client, "satchel_worker_restarts_total", function="crash", cause="crash") == 0
        r = client.post("/v1/functions/crash:invoke", json={"how": "none"})
        assert r.status_code == 200 and isinstance(r.json()["result"], int)
        assert metric(client, "satchel_worker_restarts_total", function="crash", cause="crash") == 1


@pytest.mark.slow
def test_per_function_workers_override_the_default(refs) -> None:
    app = create_app([refs["add"], refs["nap"]], workers=1, function_workers={"nap": "0:2"})
    with RunningServer(app) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        assert metric(client, "satchel_workers", function="add") == 1
        assert metric(client, "satchel_workers", function="nap") == 0
        r = client.post("/v1/functions/nap:invoke", json={"seconds": 0.0})
        assert r.status_code == 200 and "x-satchel-cold-start" in r.headers
        r = client.post("/v1/functions/add:invoke", json={"a": 1, "b": 1})
        assert r.status_code == 200 and "x-satchel-cold-start" not in r.headers


def test_bad_per_function_workers_name_the_fault(refs) -> None:
    from click.testing import CliRunner

    from satchel.serving.cli import serve_command

    with pytest.raises(ValueError, match="'nope', which is not served here"):
        create_app([refs["add"]], workers=1, function_workers={"nope": "0:2"})
    result = CliRunner().invoke(serve_command, ["add", "--function-workers", "nap"])
    assert result.exit_code == 2 and "NAME=MIN:MAX" in result.output and "--function-workers" in result.output
    result = CliRunner().invoke(serve_command, ["add", "--function-workers", "nap=3:1"])
    assert result.exit_code == 2 and "MIN <= MAX" in result.output
