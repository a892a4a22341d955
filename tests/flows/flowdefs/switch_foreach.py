"""A switch inside a foreach, on an artifact set in the same step; one case goes straight to where the
branches reconverge."""

from satchel.flows import FlowSpec, step


class SwitchForeachFlow(FlowSpec):
    @step
    def start(self):
        self.items = [1, 2, 3, 4, 5]
        self.next(self.classify, foreach="items")

    @step
    def classify(self):
        self.number = self.input
        self.parity = "even" if self.input % 2 == 0 else "odd"
        self.next({"even": self.halve, "odd": self.collect}, condition="parity")

    @step
    def halve(self):
        self.number = self.number // 2
        self.next(self.collect)

    @step
    def collect(self):
        self.label = f"{self.parity}:{self.number}"
        self.next(self.join)

    @step
    def join(self, inputs):
        self.labels = [i.label for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    SwitchForeachFlow()
