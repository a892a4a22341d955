"""A step that sets an artifact pickle cannot store."""

import threading

from satchel.flows import FlowSpec, step


class UnpicklableFlow(FlowSpec):
    @step
    def start(self):
        self.lock = threading.Lock()
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    UnpicklableFlow()
