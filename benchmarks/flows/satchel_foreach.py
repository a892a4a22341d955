"""Benchmark flow: a 50-way foreach of trivial tasks, then a join (Satchel flows)."""

from satchel.flows import FlowSpec, step


class BenchForeachFlow(FlowSpec):
    @step
    def start(self):
        self.items = list(range(50))
        self.next(self.square, foreach="items")

    @step
    def square(self):
        self.value = self.input * self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.value for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    BenchForeachFlow()
