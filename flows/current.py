"""`current`: where the running task is (flow, run, step, task, attempt), readable inside a step."""

from __future__ import annotations


class Current:
    """Set by the task runner in each task process; attributes are None outside a task."""

    flow_name: str | None = None
    run_id: str | None = None
    step_name: str | None = None
    task_id: str | None = None
    retry_count: int = 0
    username: str | None = None

    @property
    def pathspec(self) -> str | None:
        if self.task_id is None:
            return None
        return f"{self.flow_name}/{self.run_id}/{self.step_name}/{self.task_id}"

    def _set(self, **values: object) -> None:
        for key, value in values.items():
            setattr(self, key, value)


current = Current()
