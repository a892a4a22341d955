"""The issue's shape: a foreach over shards whose `fit` step runs in its own environment (with a
package the test process lacks), and a join collecting the results."""

import os
import sys

from satchel.flows import FlowSpec, Parameter, catch, environment, resources, step, timeout


class EnvFlow(FlowSpec):
    shards = Parameter("shards", default=3)

    @step
    def start(self):
        self.items = list(range(self.shards))
        self.parent_pid = os.getpid()
        self.next(self.fit, foreach="items")

    @environment(pypi=["humanize==4.12.1"])
    @resources(cpu=1, memory=256)
    @step
    def fit(self):
        import humanize

        self.model = humanize.intcomma(1000 * (self.input + 1))
        self.shard = self.input
        self.executable = sys.executable
        self.pid = os.getpid()
        print(f"fitted shard {self.input}")
        self.next(self.join)

    @step
    def join(self, inputs):
        self.models = [i.model for i in inputs]
        self.executables = sorted({i.executable for i in inputs})
        self.next(self.end)

    @step
    def end(self):
        self.count = len(self.models)


class BadEnvFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.fit)

    @environment(pypi=["humanize==99.0.0"])
    @step
    def fit(self):
        self.next(self.end)

    @step
    def end(self):
        pass


class SlowEnvFlow(FlowSpec):
    """A stuck task in an environment is killed by its timeout; a failing one is caught."""

    @step
    def start(self):
        self.next(self.stuck)

    @catch(var="stuck_error")
    @timeout(seconds=2)
    @environment(pypi=["humanize==4.12.1"])
    @step
    def stuck(self):
        import time

        time.sleep(60)
        self.next(self.broken)

    @catch(var="broken_error")
    @environment(pypi=["humanize==4.12.1"])
    @step
    def broken(self):
        raise ValueError("no model for you")
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    EnvFlow()
