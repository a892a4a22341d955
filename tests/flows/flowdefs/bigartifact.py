"""A flow storing the same (seeded) artifact in every run, for deduplication."""

from satchel.flows import FlowSpec, Parameter, step


class BigArtifactFlow(FlowSpec):
    seed = Parameter("seed", default=7)

    @step
    def start(self):
        self.blob = bytes((i * self.seed) % 251 for i in range(200_000))
        self.next(self.end)

    @step
    def end(self):
        self.size = len(self.blob)


if __name__ == "__main__":
    BigArtifactFlow()
