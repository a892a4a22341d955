"""Flows: the engine that trains models and records what it made.

from satchel.flows import FlowSpec, step, Parameter, resources, environment, retry, catch, timeout
from satchel.flows import schedule, trigger_on_finish   # flow (class) decorators, recorded in run metadata
"""

from satchel.flows.client import DataArtifacts, Flow, Run, Step, Task, get_namespace, namespace
from satchel.flows.current import current
from satchel.flows.decorators import (
    CaughtException,
    catch,
    environment,
    resources,
    retry,
    schedule,
    step,
    timeout,
    trigger_on_finish,
)
from satchel.flows.errors import ArtifactError, FlowError, GraphError, RunFailed
from satchel.flows.gc import GcSummary, gc
from satchel.flows.parameters import Parameter
from satchel.flows.runner import Runner
from satchel.flows.spec import FlowSpec

__all__ = [
    "ArtifactError",
    "CaughtException",
    "DataArtifacts",
    "Flow",
    "FlowError",
    "FlowSpec",
    "GcSummary",
    "GraphError",
    "Parameter",
    "Run",
    "RunFailed",
    "Runner",
    "Step",
    "Task",
    "catch",
    "current",
    "environment",
    "gc",
    "get_namespace",
    "resources",
    "namespace",
    "retry",
    "schedule",
    "step",
    "timeout",
    "trigger_on_finish",
]
