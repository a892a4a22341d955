"""A flow whose first task writes its pid to $STALLED_PIDS and then blocks opening the FIFO $STALLED_FIFO
(nobody writes to it): a test kills the driver while the run is in flight."""

import os

from satchel.flows import FlowSpec, step


class StalledFlow(FlowSpec):
    @step
    def start(self):
        with open(os.environ["STALLED_PIDS"], "w") as fh:
            fh.write(str(os.getpid()))
        with open(os.environ["STALLED_FIFO"], "rb") as fifo:  # blocks until a writer opens it
            fifo.read()
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    StalledFlow()
