"""A linear five-step flow with a parameter."""

from satchel.flows import FlowSpec, Parameter, step


class LinearFlow(FlowSpec):
    alpha = Parameter("alpha", default=0.5)
    label = Parameter("label", default="x")

    @step
    def start(self):
        self.values = [1, 2, 3]
        print("starting with", self.alpha)
        self.next(self.a)

    @step
    def a(self):
        self.total = sum(self.values) * self.alpha
        self.next(self.b)

    @step
    def b(self):
        self.total += 1
        self.next(self.c)

    @step
    def c(self):
        self.doubled = self.total * 2
        self.next(self.end)

    @step
    def end(self):
        self.summary = f"{self.label}:{self.doubled}"


if __name__ == "__main__":
    LinearFlow()
