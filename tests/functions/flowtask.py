"""Functions bound to a flow task (tests/flows/flowdefs/trainer.py): they read `task.data`."""

from __future__ import annotations

import satchel
from satchel.flows import Task
from tests.functions.trained import TinyModel

PLAIN = satchel.Environment(python="3.11")


@satchel.function(environment=PLAIN)
def predict(x: float, task: Task) -> float:
    """Predict with the task's model."""
    model: TinyModel = task.data.model
    return model.predict(x)


@satchel.function(environment=PLAIN)
def task_info(task: Task) -> dict[str, str]:
    """What the function sees of its task, and which artifacts it had loaded before and after."""
    before = ",".join(task.loaded_artifacts())
    kind = task.data.meta["kind"]
    return {
        "pathspec": task.pathspec,
        "id": task.id,
        "step": task.step_name,
        "names": ",".join(task.artifact_names()),
        "loaded_before": before,
        "loaded_after": ",".join(task.loaded_artifacts()),
        "kind": kind,
        "type": type(task).__module__ + "." + type(task).__qualname__,
    }


@satchel.function(environment=PLAIN)
def touch_tripwire(task: Task) -> str:
    return repr(task.data.tripwire)


@satchel.function(environment=PLAIN)
def read_missing(task: Task) -> float:
    return task.data.weights


@satchel.function(environment=PLAIN)
def untyped_task(task) -> float:  # noqa: ANN001 - the missing annotation is the point
    return 0.0


@satchel.function(environment=PLAIN)
def read_unlisted(task: Task) -> str:
    """Reads an artifact only through getattr: bind time cannot see it."""
    return str(task.data.nowhere)
