"""Deployments: a registry of candidate/stable/previous versions per name, audits, and the server's watcher.

    satchel.deploy(ref, name="churn", audits=[checks.accuracy], wait=60)   # from a flow step or a notebook
    satchel deploy REF --name churn --audit checks:accuracy --wait 60      # the same from the shell
    satchel serve --deployment churn [--poll-interval 2]                   # serves churn's stable version
    satchel deployments ls | promote NAME [--version REF] | rollback NAME | history NAME

`deploy()` records a candidate in the registry (`deployments/` in the store; importing no server code). A
server watching the name loads the candidate, calls each audit with the loaded proxy (an audit returns
True/False or (passed, reason), or raises: a failure whose reason is the exception), and promotes it only if
all pass; otherwise the old version keeps serving and `deploy(wait=...)` raises DeploymentFailed with the
reasons. Audits travel by name (`module:qualname`) and the *server* imports them: they must be top-level
functions of a module the server can import (from its working directory or its installed packages), not
lambdas, closures or functions of a script's `__main__`.
"""

from __future__ import annotations

from .api import (
    DeploymentFailed,
    DeploymentOutcome,
    DeploymentTimeout,
    deploy,
    deployments,
    promote,
    rollback,
    wait_for_outcome,
)

__all__ = [
    "DeploymentFailed",
    "DeploymentOutcome",
    "DeploymentTimeout",
    "deploy",
    "deployments",
    "promote",
    "rollback",
    "wait_for_outcome",
]
