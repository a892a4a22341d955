"""`Runner(TrainFlow).run(alpha=0.7)`: run a flow from Python (notebooks, tests) and get the run back."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from satchel.flows.client import Flow, Run
from satchel.flows.runtime import FlowRun
from satchel.flows.spec import FlowSpec
from satchel.packager.stores import Store


class Runner:
    """Runs a FlowSpec subclass in this process's executor (tasks are forked from this process; those of
    `@environment` steps are fresh interpreters of their environment)."""

    def __init__(
        self,
        flow_cls: type[FlowSpec],
        *,
        store: Store | str | None = None,
        executor: str = "local",
        max_workers: int | None = None,
        echo: Callable[[str], None] | None = None,
    ) -> None:
        self.flow_cls = flow_cls
        self.store = store
        self.executor = executor
        self.max_workers = max_workers
        self.echo = echo

    def run(self, *, tags: Iterable[str] = (), **parameters: Any) -> Run:
        """Run to the end and return the run. RunFailed (with `.run_id`) if a task fails."""
        flow_run = FlowRun(
            self.flow_cls,
            parameters=parameters,
            tags=list(tags),
            store=self.store,
            executor=self.executor,
            max_workers=self.max_workers,
            echo=self.echo,
        )
        run_id = flow_run.run()
        return Flow(self.flow_cls.__name__, flow_run.ds.store)[run_id]
