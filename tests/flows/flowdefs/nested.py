"""A foreach inside a foreach, with a branch inside the inner body."""

from satchel.flows import FlowSpec, step


class NestedFlow(FlowSpec):
    @step
    def start(self):
        self.letters = ["a", "b", "c"]
        self.next(self.outer, foreach="letters")

    @step
    def outer(self):
        self.letter = self.input
        self.numbers = [1, 2]
        self.next(self.inner, foreach="numbers")

    @step
    def inner(self):
        self.label = f"{self.letter}{self.input}"
        self.next(self.up, self.down)

    @step
    def up(self):
        self.word = self.label.upper()
        self.next(self.both)

    @step
    def down(self):
        self.word = self.label.lower()
        self.next(self.both)

    @step
    def both(self, inputs):
        self.pair = inputs.up.word + inputs.down.word
        self.next(self.inner_join)

    @step
    def inner_join(self, inputs):
        self.pairs = [i.pair for i in inputs]
        self.next(self.outer_join)

    @step
    def outer_join(self, inputs):
        self.all_pairs = [p for i in inputs for p in i.pairs]
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    NestedFlow()
