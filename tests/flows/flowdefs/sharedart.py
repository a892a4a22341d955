"""A flow whose artifacts depend only on `seed`, so runs with one seed share (deduplicate) every blob."""

from satchel.flows import FlowSpec, Parameter, step


def table(seed: int) -> bytes:
    return bytes((i * seed) % 251 for i in range(50_000))


class SharedArtifactFlow(FlowSpec):
    seed = Parameter("seed", default=1)
    rounds = Parameter("rounds", default=6)

    @step
    def start(self):
        self.table = table(self.seed)
        self.items = list(range(self.rounds))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.table = table(self.seed)  # stored again: a dedup hit on start's blob
        self.part = (self.seed, self.input)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.parts = sorted(i.part for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        self.count = len(self.parts)


if __name__ == "__main__":
    SharedArtifactFlow()
