"""A flow whose step deploys a bundle through the public `satchel.deploy`, gated by an audit."""

import satchel
from satchel.flows import FlowSpec, Parameter, step
from tests.functions import deploy_audits


class DeployFlow(FlowSpec):
    ref = Parameter("ref", default="")
    registry = Parameter("registry", default="")

    @step
    def start(self):
        outcome = satchel.deploy(
            self.ref, name="fromflow", audits=[deploy_audits.not_v3], wait=60, store=self.registry
        )
        self.promoted = outcome.promoted
        self.deployed = outcome.ref
        self.next(self.end)

    @step
    def end(self):
        pass
