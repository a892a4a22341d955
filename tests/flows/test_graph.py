"""The graph is read from the source and validated before anything runs."""

from __future__ import annotations

import inspect

import pytest

from satchel.flows import FlowSpec, GraphError, catch, retry, step
from satchel.flows.graph import FlowGraph
from tests.flows.helpers import flow_class


def _line(func) -> int:
    return func.__code__.co_firstlineno


def test_kinds_and_splits_of_a_nested_flow() -> None:
    graph = FlowGraph(flow_class("nested", "NestedFlow"))
    kinds = {n.name: n.kind for n in graph}
    assert kinds == {
        "start": "foreach",
        "outer": "foreach",
        "inner": "split",
        "up": "linear",
        "down": "linear",
        "both": "join",
        "inner_join": "join",
        "outer_join": "join",
        "end": "end",
    }
    assert graph["up"].split_stack == ["start", "outer", "inner"]
    assert graph["both"].matching_split == "inner"
    assert graph["inner_join"].matching_split == "outer"
    assert graph["outer_join"].matching_split == "start"
    assert [n.name for n in graph.sorted_steps()][0] == "start"


def test_decorators_are_recorded() -> None:
    graph = FlowGraph(flow_class("resilient", "ResilientFlow"))
    assert graph["flaky"].decos["retry"] == {"times": 2}
    assert graph["flaky"].decos["resources"] == {"cpu": 1, "memory": 512, "gpu": 0}
    assert graph["stuck"].decos["timeout"] == {"seconds": 1.0}
    assert graph["broken"].decos["catch"] == {"var": "broken_error"}


def test_missing_end() -> None:
    class NoEnd(FlowSpec):
        @step
        def start(self):
            pass

    with pytest.raises(GraphError, match="no @step named 'end'"):
        FlowGraph(NoEnd)


def test_unknown_target_names_step_and_line() -> None:
    class Typo(FlowSpec):
        @step
        def start(self):
            self.x = 1
            self.next(self.ned)

        @step
        def end(self):
            pass

    with pytest.raises(GraphError) as err:
        FlowGraph(Typo)
    message = str(err.value)
    assert "step 'start'" in message and "'ned'" in message
    assert f"{inspect.getsourcefile(Typo.start)}:{_line(Typo.start) + 3}" in message


def test_unreachable_step() -> None:
    class Orphan(FlowSpec):
        @step
        def start(self):
            self.next(self.end)

        @step
        def lonely(self):
            self.next(self.end)

        @step
        def end(self):
            pass

    with pytest.raises(GraphError, match="step 'lonely'.*not reachable"):
        FlowGraph(Orphan)


def test_step_without_next() -> None:
    class Stops(FlowSpec):
        @step
        def start(self):
            self.next(self.middle)

        @step
        def middle(self):
            pass

        @step
        def end(self):
            pass

    with pytest.raises(GraphError, match=r"step 'middle'.*does not end with self.next"):
        FlowGraph(Stops)


def test_branch_into_a_step_that_is_not_a_join() -> None:
    class NoJoin(FlowSpec):
        @step
        def start(self):
            self.next(self.a, self.b)

        @step
        def a(self):
            self.next(self.merge)

        @step
        def b(self):
            self.next(self.merge)

        @step
        def merge(self):
            self.next(self.end)

        @step
        def end(self):
            pass

    with pytest.raises(GraphError, match=r"step 'merge'.*must be a join: def merge\(self, inputs\)"):
        FlowGraph(NoJoin)


def test_split_never_joined() -> None:
    class Open(FlowSpec):
        @step
        def start(self):
            self.items = [1]
            self.next(self.each, foreach="items")

        @step
        def each(self):
            self.next(self.end)

        @step
        def end(self):
            pass

    with pytest.raises(GraphError, match=r"step 'end'.*'start' is never joined"):
        FlowGraph(Open)


def test_join_without_split() -> None:
    class Lonely(FlowSpec):
        @step
        def start(self):
            self.next(self.join)

        @step
        def join(self, inputs):
            self.next(self.end)

        @step
        def end(self):
            pass

    with pytest.raises(GraphError, match=r"step 'join'.*no open branch or foreach"):
        FlowGraph(Lonely)


def test_join_closing_two_different_splits() -> None:
    class Crossed(FlowSpec):
        @step
        def start(self):
            self.next(self.a, self.b)

        @step
        def a(self):
            self.items = [1, 2]
            self.next(self.each, foreach="items")

        @step
        def each(self):
            self.next(self.join)

        @step
        def b(self):
            self.next(self.join)

        @step
        def join(self, inputs):
            self.next(self.end)

        @step
        def end(self):
            pass

    with pytest.raises(GraphError, match=r"step 'join'.*different splits"):
        FlowGraph(Crossed)


def test_foreach_must_name_an_artifact() -> None:
    class NoItems(FlowSpec):
        @step
        def start(self):
            self.next(self.each, foreach="itmes")

        @step
        def each(self):
            self.next(self.join)

        @step
        def join(self, inputs):
            self.next(self.end)

        @step
        def end(self):
            pass

    with pytest.raises(GraphError, match=r"step 'start'.*foreach='itmes' names no artifact"):
        FlowGraph(NoItems)


def test_next_called_twice() -> None:
    class Twice(FlowSpec):
        @step
        def start(self):
            if self:
                self.next(self.end)
            else:
                self.next(self.end)

        @step
        def end(self):
            pass

    with pytest.raises(GraphError, match=r"step 'start'.*once, found calls on lines"):
        FlowGraph(Twice)


def test_cycle() -> None:
    class Loop(FlowSpec):
        @step
        def start(self):
            self.next(self.a)

        @step
        def a(self):
            self.next(self.b)

        @step
        def b(self):
            self.next(self.a)

        @step
        def end(self):
            pass

    with pytest.raises(GraphError, match="cycle"):
        FlowGraph(Loop)


def test_decorators_without_step() -> None:
    class Forgot(FlowSpec):
        @step
        def start(self):
            self.next(self.end)

        @retry(times=1)
        def helper(self):
            pass

        @step
        def end(self):
            pass

    with pytest.raises(GraphError, match="helper has step decorators but no @step"):
        FlowGraph(Forgot)


def test_decorator_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="@retry"):
        retry(times=-1)
    with pytest.raises(ValueError, match="@catch"):
        catch(var="not an identifier")


def test_show_lists_the_graph() -> None:
    text = FlowGraph(flow_class("foreach", "ForeachFlow")).describe()
    assert "Step start (foreach)" in text and "=> square  (foreach items)" in text
