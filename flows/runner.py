"""`Runner(TrainFlow).run(alpha=0.7)`: run a flow from Python (notebooks, tests) and get the run back;
`.resume(step)` a failed run, `.spin(step)` one step against a past run's inputs."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from satchel.flows.client import Flow, Run
from satchel.flows.driver import FlowRun
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
        ray_address: str | None = None,
        progress: Any = None,
    ) -> None:
        """`progress`: True for a live table on the terminal, or a rich Console to draw it on."""
        if ray_address is not None and executor != "ray":
            raise ValueError(f"ray_address is for executor='ray', not {executor!r}")
        self.ray_address = ray_address
        self.flow_cls = flow_cls
        self.store = store
        self.executor = executor
        self.max_workers = max_workers
        self.echo = echo
        self.progress = progress

    def run(self, *, tags: Iterable[str] = (), **parameters: Any) -> Run:
        """Run to the end and return the run. RunFailed (with `.run_id`) if a task fails."""
        return self._go(tags=list(tags), parameters=parameters)

    def resume(
        self, step: str | None = None, origin_run_id: str | None = None, *, tags: Iterable[str] = ()
    ) -> Run:
        """A new run that clones the successful tasks of `origin_run_id` (default: the latest run) for
        the steps before `step` (default: the first step that failed) and runs the rest."""
        return self._go(tags=list(tags), mode="resume", step=step, origin_run_id=origin_run_id)

    def spin(self, step: str, run_id: str | None = None, *, task: str | None = None) -> Run:
        """Re-execute `step`'s tasks (or one `task`) against the inputs recorded in `run_id` (default:
        the latest successful run); the result is a separate run marked as a spin."""
        return self._go(mode="spin", step=step, origin_run_id=run_id, task=task)

    def _go(self, **options: Any) -> Run:
        flow_run = FlowRun(
            self.flow_cls,
            **options,
            store=self.store,
            executor=self.executor,
            max_workers=self.max_workers,
            echo=self.echo,
            executor_options={"address": self.ray_address} if self.ray_address else {},
            progress=_progress(self.progress),
        )
        run_id = flow_run.run()
        return Flow(self.flow_cls.__name__, flow_run.ds.store)[run_id]


def _progress(progress: Any) -> Any:
    """A progress sink for FlowRun from Runner's `progress` (None, True, or a rich Console)."""
    if progress is None or progress is False:
        return None
    from satchel.flows.progress import LiveProgress

    return LiveProgress(None if progress is True else progress)
