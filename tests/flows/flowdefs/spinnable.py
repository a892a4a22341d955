"""A foreach whose body reads $SPIN_FACTOR, to re-execute (spin) after changing it."""

import os

from satchel.flows import FlowSpec, step


class SpinFlow(FlowSpec):
    @step
    def start(self):
        self.base = 5
        self.items = [1, 2, 3]
        self.next(self.scale, foreach="items")

    @step
    def scale(self):
        factor = int(os.environ.get("SPIN_FACTOR", "2"))
        print(f"scaling {self.input} by {factor}")
        self.scaled = self.input * factor + self.base
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.scaled for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    SpinFlow()
