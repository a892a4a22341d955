"""The flow graph, read from the class: each step's `self.next(...)` call is parsed from its source (AST),
and the whole graph is validated before anything runs.

`self.next({"high": self.high, "low": self.low}, condition="mode")` is a switch: the value of artifact
`mode` picks the one branch that runs; the branches reconverge in a later step that is not a join.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field

from satchel.flows.decorators import DECOS, STEP_MARK, flow_decorators
from satchel.flows.errors import GraphError


@dataclass
class StepNode:
    """One step: its out-edges, kind, decorators and where it is defined."""

    name: str
    func: Callable = field(repr=False)
    file: str
    line: int
    out: list[str] = field(default_factory=list)
    foreach: str | None = None
    next_line: int | None = None
    is_join: bool = False
    decos: dict[str, dict] = field(default_factory=dict)
    #: names assigned as `self.<name> = ...` in the step's body
    assigns: set[str] = field(default_factory=set)
    in_steps: list[str] = field(default_factory=list)
    #: the splits open inside this step (outermost first)
    split_stack: list[str] = field(default_factory=list)
    #: for a join, the split it closes
    matching_split: str | None = None
    #: for a switch: case value -> step, and the artifact whose value picks the case
    switch: dict[str, str] | None = None
    condition: str | None = None
    #: for a switch, the step its branches reconverge in; for that step, the switch
    rejoins_at: str | None = None
    reconverges: str | None = None

    @property
    def kind(self) -> str:
        if self.name == "end":
            return "end"
        if self.switch is not None:
            return "switch"
        if self.foreach:
            return "foreach"
        if len(self.out) > 1:
            return "split"
        return "join" if self.is_join else "linear"

    def where(self, line: int | None = None) -> str:
        return f"{self.file}:{line or self.line}"


class FlowGraph:
    """Steps of a FlowSpec subclass by name, validated."""

    def __init__(self, flow_cls: type) -> None:
        self.name = flow_cls.__name__
        self.flow_decos = flow_decorators(flow_cls)
        self.nodes: dict[str, StepNode] = {}
        for attr in dir(flow_cls):
            func = getattr(flow_cls, attr, None)
            if callable(func) and getattr(func, STEP_MARK, False):
                self.nodes[attr] = _parse_step(attr, func)
            elif callable(func) and getattr(func, DECOS, None) and not attr.startswith("__"):
                raise GraphError(f"{self.name}.{attr} has step decorators but no @step ({_where(func)})")
        self._validate()
        known = {a for n in self.nodes.values() for a in n.assigns} | {
            a for a in dir(flow_cls) if not a.startswith("_")
        }
        for node in self.nodes.values():
            if node.foreach and node.foreach not in known:
                self._fail(
                    node,
                    f"foreach={node.foreach!r} names no artifact: no step assigns self.{node.foreach}",
                    node.next_line,
                )
            if node.condition and node.condition not in known:
                self._fail(
                    node,
                    f"condition={node.condition!r} names no artifact: no step assigns self.{node.condition}",
                    node.next_line,
                )

    def __getitem__(self, name: str) -> StepNode:
        return self.nodes[name]

    def __iter__(self):
        return iter(self.nodes.values())

    def sorted_steps(self) -> list[StepNode]:
        """Steps in topological order from start."""
        order: list[str] = []
        seen: set[str] = set()

        def visit(name: str) -> None:
            if name in seen:
                return
            seen.add(name)
            for child in self.nodes[name].out:
                visit(child)
            order.append(name)

        visit("start")
        return [self.nodes[n] for n in reversed(order)]

    def _fail(self, node: StepNode, message: str, line: int | None = None) -> None:
        raise GraphError(f"step {node.name!r} ({node.where(line)}): {message}")

    def _validate(self) -> None:
        for required in ("start", "end"):
            if required not in self.nodes:
                raise GraphError(f"flow {self.name} has no @step named {required!r}")
        for node in self.nodes.values():
            if node.name == "end":
                if node.out:
                    self._fail(node, "the end step must not call self.next()", node.next_line)
                continue
            if not node.out:
                self._fail(node, "the step does not end with self.next(...)")
            for case, target in (node.switch or {}).items():
                if target not in self.nodes:
                    self._fail(
                        node,
                        f"switch case {case!r} names {target!r}, which is not a @step of {self.name}",
                        node.next_line,
                    )
            for target in node.out:
                if target not in self.nodes:
                    self._fail(
                        node,
                        f"self.next() names {target!r}, which is not a @step of {self.name}",
                        node.next_line,
                    )
                self.nodes[target].in_steps.append(node.name)
            if node.foreach and len(node.out) != 1:
                self._fail(node, "a foreach must go to exactly one step", node.next_line)
        if self.nodes["start"].is_join:
            self._fail(self.nodes["start"], "the start step cannot be a join (it takes no inputs)")
        self._check_cycles()
        unreachable = set(self.nodes) - set(n.name for n in self.sorted_steps())
        for name in sorted(unreachable):
            self._fail(self.nodes[name], "the step is not reachable from start")
        self._check_switches()
        for node in self.nodes.values():
            if len(node.in_steps) > 1 and not node.is_join and not node.reconverges:
                self._fail(
                    node,
                    f"steps {sorted(node.in_steps)} all go to it, so it must be a join: def {node.name}(self, inputs)",
                )
        self._assign_splits()

    def descendants(self, name: str) -> set[str]:
        """`name` and every step reachable from it."""
        seen: set[str] = set()
        todo = [name]
        while todo:
            current = todo.pop()
            if current not in seen:
                seen.add(current)
                todo.extend(self.nodes[current].out)
        return seen

    def _check_switches(self) -> None:
        """Each switch's branches must reconverge in one step that is not a join, reached only from the
        branches of switches that reconverge there (nested switches may share it)."""
        order = [n.name for n in self.sorted_steps()]
        regions: dict[str, set[str]] = {}
        for node in self.nodes.values():
            if node.switch is None:
                continue
            reach = [self.descendants(t) for t in node.out]
            common = set.intersection(*reach)
            meet = self.nodes[next(n for n in order if n in common)]
            if meet.is_join:
                self._fail(
                    node,
                    f"the branches of the switch ({', '.join(node.out)}) first meet at {meet.name!r}, which is a "
                    f"join; they must reconverge in a step that is not a join (def {meet.name}(self))",
                    node.next_line,
                )
            region = (set.union(*reach) - self.descendants(meet.name)) | {node.name}
            regions.setdefault(meet.name, set()).update(region)
            node.rejoins_at = meet.name
            if meet.reconverges is None:
                meet.reconverges = node.name
        for name, region in regions.items():
            meet = self.nodes[name]
            strays = sorted(set(meet.in_steps) - region)
            if strays:
                switch = self.nodes[meet.reconverges or name]
                self._fail(
                    switch,
                    f"the branches of the switch do not reconverge on their own: {name!r}, where they meet, is "
                    f"also reached from {', '.join(map(repr, strays))}, outside the switch",
                    switch.next_line,
                )

    def _check_cycles(self) -> None:
        state: dict[str, int] = {}

        def visit(name: str, path: list[str]) -> None:
            state[name] = 1
            for child in self.nodes[name].out:
                if state.get(child) == 1:
                    self._fail(
                        self.nodes[name],
                        f"self.next() closes a cycle: {' -> '.join(path + [child])}",
                        self.nodes[name].next_line,
                    )
                if child not in state:
                    visit(child, path + [child])
            state[name] = 2

        visit("start", ["start"])

    def _assign_splits(self) -> None:
        assigned: dict[str, tuple[str, ...]] = {}

        for node in self.sorted_steps():
            parents = [self.nodes[p] for p in node.in_steps]
            if node.name == "start":
                stack: tuple[str, ...] = ()
            else:
                incoming = set()
                for parent in parents:
                    parent_stack = assigned[parent.name]
                    if parent.kind in ("foreach", "split"):
                        parent_stack = parent_stack + (parent.name,)
                    incoming.add(parent_stack)
                if len(incoming) > 1:
                    self._fail(
                        node,
                        f"its inputs come from different splits ({', '.join(sorted(node.in_steps))}); a join must close one split",
                    )
                (stack,) = incoming
                if node.is_join:
                    if not stack:
                        self._fail(
                            node, "the step takes inputs, but there is no open branch or foreach to join"
                        )
                    node.matching_split = stack[-1]
                    split = self.nodes[node.matching_split]
                    if split.kind == "split" and len(node.in_steps) < 2:
                        self._fail(
                            node,
                            f"the join has one input, but the branch at {split.name!r} has {len(split.out)}",
                        )
                    if split.kind == "foreach" and len(node.in_steps) != 1:
                        self._fail(
                            node, f"a foreach join must have one input step, it has {sorted(node.in_steps)}"
                        )
                    stack = stack[:-1]
            assigned[node.name] = stack
            node.split_stack = list(stack)
        end = self.nodes["end"]
        if end.split_stack:
            self._fail(end, f"the split at {end.split_stack[-1]!r} is never joined before end")

    def to_dict(self) -> dict:
        return {
            n.name: {
                "kind": n.kind,
                "next": n.out,
                "foreach": n.foreach,
                "decorators": n.decos,
                "line": n.line,
                **(
                    {"switch": n.switch, "condition": n.condition, "rejoins_at": n.rejoins_at}
                    if n.switch is not None
                    else {}
                ),
            }
            for n in self.sorted_steps()
        }

    def describe(self) -> str:
        """A human-readable listing (for `flow.py show`)."""
        lines = [f"Flow {self.name}"]
        lines += [f"    @{name}({_options(opts)})" for name, opts in self.flow_decos.items()]
        lines.append("")
        for n in self.sorted_steps():
            doc = inspect.getdoc(n.func)
            head = f"Step {n.name} ({n.kind})"
            if n.decos:
                head += "  " + " ".join(f"@{d}" for d in n.decos)
            lines.append(head)
            if doc:
                lines.append(f"    {doc.splitlines()[0]}")
            if n.switch is not None:
                cases = ", ".join(f"{case!r}: {target}" for case, target in n.switch.items())
                lines.append(f"    => {{{cases}}}  (switch on {n.condition}, rejoining at {n.rejoins_at})")
            elif n.out:
                arrow = f"    => {', '.join(n.out)}"
                if n.foreach:
                    arrow += f"  (foreach {n.foreach})"
                lines.append(arrow)
            lines.append("")
        return "\n".join(lines).rstrip() + "\n"


def _options(options: dict) -> str:
    shown = {k: v for k, v in options.items() if k != "given" and v is not None}
    return ", ".join(f"{k}={v!r}" for k, v in shown.items())


def _where(func: Callable) -> str:
    code = getattr(func, "__code__", None)
    return f"{code.co_filename}:{code.co_firstlineno}" if code else func.__qualname__


def _parse_step(name: str, func: Callable) -> StepNode:
    code = func.__code__
    node = StepNode(name=name, func=func, file=code.co_filename, line=code.co_firstlineno)
    node.decos = dict(getattr(func, DECOS, {}))
    params = list(inspect.signature(func).parameters)
    if len(params) not in (1, 2):
        raise GraphError(
            f"step {name!r} ({node.where()}): a step takes (self) or, for a join, (self, inputs)"
        )
    node.is_join = len(params) == 2
    try:
        source = textwrap.dedent(inspect.getsource(func))
    except (OSError, TypeError) as exc:
        raise GraphError(
            f"step {name!r} ({node.where()}): cannot read its source to build the graph: {exc}"
        ) from None
    tree = ast.parse(source)
    offset = code.co_firstlineno - 1
    calls = [
        c
        for c in ast.walk(tree)
        if isinstance(c, ast.Call)
        and isinstance(c.func, ast.Attribute)
        and c.func.attr == "next"
        and isinstance(c.func.value, ast.Name)
        and c.func.value.id == "self"
    ]
    for target in ast.walk(tree):
        if isinstance(target, ast.Attribute) and isinstance(target.ctx, ast.Store):
            if isinstance(target.value, ast.Name) and target.value.id == "self":
                node.assigns.add(target.attr)
    if len(calls) > 1:
        lines = ", ".join(str(c.lineno + offset) for c in calls)
        raise GraphError(
            f"step {name!r} ({node.where()}): self.next() must be called once, found calls on lines {lines}"
        )
    if not calls:
        return node
    call = calls[0]
    node.next_line = call.lineno + offset
    if any(isinstance(arg, ast.Dict) for arg in call.args):
        _parse_switch(node, call)
        return node
    for arg in call.args:
        if not (
            isinstance(arg, ast.Attribute) and isinstance(arg.value, ast.Name) and arg.value.id == "self"
        ):
            raise GraphError(
                f"step {name!r} ({node.where(node.next_line)}): self.next() takes steps as self.<step>, got {ast.unparse(arg)}"
            )
        node.out.append(arg.attr)
    if not node.out:
        raise GraphError(f"step {name!r} ({node.where(node.next_line)}): self.next() needs at least one step")
    for kw in call.keywords:
        if kw.arg == "foreach":
            if not (
                isinstance(kw.value, ast.Constant)
                and isinstance(kw.value.value, str)
                and kw.value.value.isidentifier()
            ):
                raise GraphError(
                    f"step {name!r} ({node.where(node.next_line)}): foreach= must be the name of an artifact as a string literal"
                )
            node.foreach = kw.value.value
        elif kw.arg == "condition":
            raise GraphError(
                f"step {name!r} ({node.where(node.next_line)}): condition= makes a switch, which takes a dict of "
                "steps: self.next({'a': self.a, 'b': self.b}, condition='<artifact>')"
            )
        else:
            raise GraphError(
                f"step {name!r} ({node.where(node.next_line)}): self.next() has no keyword {kw.arg!r}"
            )
    if node.foreach and len(node.out) != 1:
        raise GraphError(
            f"step {name!r} ({node.where(node.next_line)}): a foreach must go to exactly one step"
        )
    return node


def _parse_switch(node: StepNode, call: ast.Call) -> None:
    """`self.next({"a": self.a, "b": self.b}, condition="<artifact>")`: string literal cases, steps as
    self.<step>, and the condition as the name of an artifact in a string literal."""
    where = f"step {node.name!r} ({node.where(node.next_line)})"
    if len(call.args) != 1:
        raise GraphError(
            f"{where}: a switch takes one dict of steps, nothing else: self.next({{...}}, condition=...)"
        )
    cases: dict[str, str] = {}
    table = call.args[0]
    assert isinstance(table, ast.Dict)
    for key, value in zip(table.keys, table.values):
        if key is None or not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
            shown = "**" + ast.unparse(value) if key is None else ast.unparse(key)
            raise GraphError(f"{where}: switch cases must be string literals, got {shown}")
        if not (
            isinstance(value, ast.Attribute)
            and isinstance(value.value, ast.Name)
            and value.value.id == "self"
        ):
            raise GraphError(
                f"{where}: switch case {key.value!r} must name a step as self.<step>, got {ast.unparse(value)}"
            )
        if key.value in cases:
            raise GraphError(f"{where}: switch case {key.value!r} is given twice")
        cases[key.value] = value.attr
    if not cases:
        raise GraphError(f"{where}: a switch needs at least one case")
    condition = None
    for kw in call.keywords:
        if kw.arg == "condition":
            if not (
                isinstance(kw.value, ast.Constant)
                and isinstance(kw.value.value, str)
                and kw.value.value.isidentifier()
            ):
                raise GraphError(
                    f"{where}: condition= must be the name of an artifact as a string literal, got {ast.unparse(kw.value)}"
                )
            condition = kw.value.value
        elif kw.arg == "foreach":
            raise GraphError(f"{where}: a switch cannot also be a foreach")
        else:
            raise GraphError(f"{where}: self.next() has no keyword {kw.arg!r}")
    if condition is None:
        raise GraphError(
            f"{where}: a switch needs condition='<artifact>' naming the artifact that picks the case"
        )
    node.switch = cases
    node.condition = condition
    node.out = list(dict.fromkeys(cases.values()))
