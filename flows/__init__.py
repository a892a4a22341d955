"""Flows: the engine that trains models and records what it made.

from satchel.flows import FlowSpec, step, Parameter, resources, environment, retry, catch, timeout
"""

from satchel.flows.client import DataArtifacts, Flow, Run, Step, Task
from satchel.flows.current import current
from satchel.flows.decorators import CaughtException, catch, environment, resources, retry, step, timeout
from satchel.flows.errors import ArtifactError, FlowError, GraphError, RunFailed
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
    "resources",
    "retry",
    "step",
    "timeout",
]
