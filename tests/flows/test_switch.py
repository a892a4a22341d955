"""The conditional switch: only the branch the condition artifact picks runs; the graph checker refuses
switches it cannot run, naming the step and line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from satchel.flows import Flow, FlowSpec, GraphError, step
from satchel.flows.graph import FlowGraph
from tests.flows.helpers import FLOWDEFS, flow_class, run_flow

MODES = ["cli", "runner"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("choice", "taken", "skipped", "final"),
    [("high", "high", "low", "high:100"), ("low", "low", "high", "low:9")],
)
def test_only_the_chosen_branch_runs(
    mode: str, choice: str, taken: str, skipped: str, final: str, store_url: str
) -> None:
    run = run_flow(mode, "switch", "SwitchFlow", choice=choice)
    assert run.successful
    assert run.data.final == final
    assert len(run[taken].tasks) == 1
    assert run[skipped].tasks == []
    assert run["start"].task.record["switch"] == {"condition": "choice", "value": choice, "step": taken}
    assert run["after"].task.record["inputs"] == [run[taken].task.pathspec]


@pytest.mark.parametrize("mode", MODES)
def test_a_value_among_no_case_fails_naming_step_artifact_and_cases(mode: str, store_url: str) -> None:
    run = run_flow(mode, "switch", "SwitchFlow", expect_ok=False, choice="medium")
    error = run.record["error"]
    assert "step 'start'" in error
    assert "condition artifact 'choice' is 'medium'" in error
    assert "not one of its cases: 'high', 'low'" in error
    assert run["high"].tasks == [] and run["low"].tasks == []


def test_switch_inside_a_foreach_with_a_case_going_straight_to_the_rejoin(store_url: str) -> None:
    run = run_flow("runner", "switch_foreach", "SwitchForeachFlow")
    assert run.data.labels == ["odd:1", "even:1", "odd:3", "even:2", "odd:5"]
    assert len(run["classify"].tasks) == 5
    assert len(run["halve"].tasks) == 2
    assert len(run["collect"].tasks) == 5
    graph = FlowGraph(flow_class("switch_foreach", "SwitchForeachFlow"))
    assert graph["classify"].kind == "switch" and graph["classify"].rejoins_at == "collect"
    assert graph["collect"].kind == "linear" and graph["join"].matching_split == "start"


def test_show_displays_the_switch(store_url: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(FLOWDEFS / "switch.py"), "show"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "Step start (switch)" in proc.stdout
    assert "=> {'high': high, 'low': low}  (switch on choice, rejoining at after)" in proc.stdout
    assert Flow("SwitchFlow").latest_run is None  # show runs nothing


def _line_of_next(func) -> int:
    import inspect

    lines, first = inspect.getsourcelines(func)
    return first + next(i for i, text in enumerate(lines) if "self.next(" in text)


def test_a_case_naming_no_step() -> None:
    class Typo(FlowSpec):
        @step
        def start(self):
            self.mode = "a"
            self.next({"a": self.a, "b": self.bb}, condition="mode")

        @step
        def a(self):
            self.next(self.end)

        @step
        def end(self):
            pass

    with pytest.raises(GraphError) as info:
        FlowGraph(Typo)
    message = str(info.value)
    assert "step 'start'" in message and f":{_line_of_next(Typo.start)})" in message
    assert "switch case 'b' names 'bb', which is not a @step of Typo" in message


def test_condition_must_be_a_string_literal() -> None:
    class NotString(FlowSpec):
        @step
        def start(self):
            self.mode = "a"
            self.next({"a": self.a}, condition=self.mode)

        @step
        def a(self):
            self.next(self.end)

        @step
        def end(self):
            pass

    with pytest.raises(
        GraphError,
        match=r"step 'start' \(.*\): condition= must be the name of an artifact as a string literal, got self.mode",
    ):
        FlowGraph(NotString)


def test_case_keys_must_be_string_literals_and_condition_is_required() -> None:
    class IntKey(FlowSpec):
        @step
        def start(self):
            self.mode = 1
            self.next({1: self.end}, condition="mode")

        @step
        def end(self):
            pass

    with pytest.raises(GraphError, match="switch cases must be string literals, got 1"):
        FlowGraph(IntKey)

    class NoCondition(FlowSpec):
        @step
        def start(self):
            self.next({"a": self.end})

        @step
        def end(self):
            pass

    with pytest.raises(GraphError, match="a switch needs condition='<artifact>'"):
        FlowGraph(NoCondition)


def test_condition_naming_no_artifact() -> None:
    class Unset(FlowSpec):
        @step
        def start(self):
            self.next({"a": self.a, "b": self.end}, condition="mood")

        @step
        def a(self):
            self.next(self.end)

        @step
        def end(self):
            pass

    with pytest.raises(GraphError, match="condition='mood' names no artifact: no step assigns self.mood"):
        FlowGraph(Unset)


def test_branches_meeting_at_a_join_do_not_reconverge() -> None:
    class MeetAtJoin(FlowSpec):
        @step
        def start(self):
            self.mode = "a"
            self.next({"a": self.a, "b": self.b}, condition="mode")

        @step
        def a(self):
            self.next(self.meet)

        @step
        def b(self):
            self.next(self.meet)

        @step
        def meet(self, inputs):
            self.next(self.end)

        @step
        def end(self):
            pass

    with pytest.raises(GraphError) as info:
        FlowGraph(MeetAtJoin)
    message = str(info.value)
    assert "step 'start' (" in message and f":{_line_of_next(MeetAtJoin.start)})" in message
    assert "first meet at 'meet', which is a join" in message


def test_a_rejoin_also_reached_from_outside_the_switch() -> None:
    class Leaky(FlowSpec):
        @step
        def start(self):
            self.next(self.left, self.right)

        @step
        def left(self):
            self.mode = "a"
            self.next({"a": self.a, "b": self.b}, condition="mode")

        @step
        def a(self):
            self.next(self.after)

        @step
        def b(self):
            self.next(self.after)

        @step
        def right(self):
            self.next(self.after)

        @step
        def after(self):
            self.next(self.end)

        @step
        def end(self):
            pass

    with pytest.raises(
        GraphError, match=r"step 'left' .*do not reconverge on their own: 'after'.*also reached from 'right'"
    ):
        FlowGraph(Leaky)


def test_nested_switches_may_share_their_rejoin(store_url: str) -> None:
    from satchel.flows import Runner

    class Nested(FlowSpec):
        @step
        def start(self):
            self.outer = "x"
            self.next({"x": self.inner, "y": self.after}, condition="outer")

        @step
        def inner(self):
            self.deep = "p"
            self.next({"p": self.p, "q": self.after}, condition="deep")

        @step
        def p(self):
            self.next(self.after)

        @step
        def after(self):
            self.next(self.end)

        @step
        def end(self):
            pass

    graph = FlowGraph(Nested)
    assert graph["start"].rejoins_at == "after" and graph["inner"].rejoins_at == "after"
    run = Runner(Nested).run()
    assert [s.name for s in run if s.tasks] == ["start", "inner", "p", "after", "end"]
