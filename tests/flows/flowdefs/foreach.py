"""A foreach with a parameterised width (50 by default), each task squaring its input."""

from satchel.flows import FlowSpec, Parameter, step


class ForeachFlow(FlowSpec):
    width = Parameter("width", default=50)

    @step
    def start(self):
        self.items = list(range(self.width))
        self.next(self.square, foreach="items")

    @step
    def square(self):
        self.square_value = self.input * self.input
        self.position = self.index
        self.next(self.join)

    @step
    def join(self, inputs):
        self.squares = [i.square_value for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        self.total = sum(self.squares)


if __name__ == "__main__":
    ForeachFlow()
