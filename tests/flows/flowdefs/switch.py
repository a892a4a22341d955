"""A switch on a parameter: only the chosen branch runs; the branches reconverge in `after`."""

from satchel.flows import FlowSpec, Parameter, step


class SwitchFlow(FlowSpec):
    choice = Parameter("choice", default="high")

    @step
    def start(self):
        self.value = 10
        self.next({"high": self.high, "low": self.low}, condition="choice")

    @step
    def high(self):
        self.result = self.value * 10
        self.next(self.after)

    @step
    def low(self):
        self.result = self.value - 1
        self.next(self.after)

    @step
    def after(self):
        self.final = f"{self.choice}:{self.result}"
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    SwitchFlow()
