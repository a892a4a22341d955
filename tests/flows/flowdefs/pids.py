"""Each task records the id of the process it ran in."""

import os

from satchel.flows import FlowSpec, resources, step


class PidFlow(FlowSpec):
    @step
    def start(self):
        self.pid = os.getpid()
        self.items = list(range(6))
        self.next(self.each, foreach="items")

    @resources(cpu=2)
    @step
    def each(self):
        self.pid = os.getpid()
        self.next(self.join)

    @step
    def join(self, inputs):
        self.pids = [i.pid for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    PidFlow()
