"""@schedule and @trigger_on_finish: validated when applied, recorded in each run, shown by `show`."""

from __future__ import annotations

import subprocess
import sys

import pytest

from satchel.flows import FlowSpec, Runner, schedule, step, trigger_on_finish
from satchel.flows.graph import FlowGraph
from tests.flows.helpers import FLOWDEFS, flow_class


def test_recorded_in_the_run_and_shown(store_url: str) -> None:
    run = Runner(flow_class("scheduled", "ScheduledFlow")).run()
    assert run.metadata["schedule"] == {"cron": "0 * * * *", "timezone": "Europe/Paris", "given": "cron"}
    assert run.metadata["trigger_on_finish"] == {"flows": ["LinearFlow", "BranchFlow"]}
    proc = subprocess.run(
        [sys.executable, str(FLOWDEFS / "scheduled.py"), "show"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "@schedule(cron='0 * * * *', timezone='Europe/Paris')" in proc.stdout
    assert "@trigger_on_finish(flows=['LinearFlow', 'BranchFlow'])" in proc.stdout


def test_presets_and_flow_classes() -> None:
    linear = flow_class("linear", "LinearFlow")

    @schedule(daily=True)
    @trigger_on_finish(flow=linear)
    class Nightly(FlowSpec):
        @step
        def start(self):
            self.next(self.end)

        @step
        def end(self):
            pass

    decos = FlowGraph(Nightly).flow_decos
    assert decos["schedule"] == {"cron": "0 0 * * *", "timezone": None, "given": "daily"}
    assert decos["trigger_on_finish"] == {"flows": ["LinearFlow"]}
    assert schedule(weekly=True) and schedule(hourly=True)


def test_run_without_flow_decorators_has_empty_metadata(store_url: str) -> None:
    run = Runner(flow_class("linear", "LinearFlow")).run()
    assert run.metadata == {}


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: schedule(cron="0 * * *"), ValueError, r"cron='0 \* \* \*'\) must have 5 fields .* it has 4"),
        (lambda: schedule(cron="0 0 * * *", daily=True), ValueError, "exactly one of .* got cron and daily"),
        (lambda: schedule(), ValueError, "exactly one of .* got none of them"),
        (lambda: schedule(cron="0 0 * * mon!"), ValueError, "field 'mon!' is not a cron field"),
        (lambda: schedule(hourly=1), ValueError, r"@schedule\(hourly=...\) must be True or False"),
        (lambda: schedule(daily=True, timezone="Mars/Olympus"), ValueError, "not a known IANA time zone"),
        (lambda: trigger_on_finish(flow=42), TypeError, "takes a flow name .* got int"),
        (lambda: trigger_on_finish(flows=["A", 3.5]), TypeError, "takes a flow name .* got float"),
        (lambda: trigger_on_finish(), ValueError, "exactly one of flow= or flows="),
        (lambda: trigger_on_finish(flow="not a name"), ValueError, "'not a name' is not a flow name"),
        (lambda: trigger_on_finish(flows=[]), TypeError, "non-empty list of flows"),
    ],
)
def test_bad_arguments_are_refused(make, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        make()


def test_only_on_flow_classes_and_only_once() -> None:
    with pytest.raises(TypeError, match="@schedule decorates a FlowSpec subclass"):

        @schedule(daily=True)
        class NotAFlow:
            pass

    with pytest.raises(TypeError, match="@schedule is applied twice"):

        @schedule(daily=True)
        @schedule(hourly=True)
        class Twice(FlowSpec):
            pass
