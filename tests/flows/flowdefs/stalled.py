"""Flows whose first task writes its pid to $STALLED_PIDS and then blocks opening the FIFO $STALLED_FIFO
(nobody writes to it): a test kills the driver while the run is in flight. StalledEnvFlow's task runs in
its own environment's interpreter (an @environment step), StalledFlow's is forked from the driver."""

import os

from satchel.flows import FlowSpec, environment, step


def report_and_block() -> None:
    with open(os.environ["STALLED_PIDS"], "w") as fh:
        fh.write(str(os.getpid()))
    with open(os.environ["STALLED_FIFO"], "rb") as fifo:  # blocks until a writer opens it
        fifo.read()


class StalledFlow(FlowSpec):
    @step
    def start(self):
        report_and_block()
        self.next(self.end)

    @step
    def end(self):
        pass


class StalledEnvFlow(FlowSpec):
    @environment(pypi=["humanize==4.12.1"])
    @step
    def start(self):
        report_and_block()
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    {"StalledFlow": StalledFlow, "StalledEnvFlow": StalledEnvFlow}[os.environ["STALLED_FLOW"]]()
