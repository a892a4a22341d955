"""Errors of the flow engine."""

from __future__ import annotations


class FlowError(Exception):
    """Base class of flow engine errors."""


class GraphError(FlowError):
    """The flow's graph is invalid; the message names the step and its source line."""


class ArtifactError(FlowError):
    """An artifact could not be stored or loaded; the message names the artifact and the step."""


class TaskFailed(FlowError):
    """A task failed after all its attempts."""


class RunFailed(FlowError):
    """A run ended with a failed task."""

    def __init__(self, message: str, run_id: str) -> None:
        super().__init__(message)
        self.run_id = run_id
