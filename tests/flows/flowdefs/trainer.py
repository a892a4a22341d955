"""Trains a tiny model in `fit`, beside a dict and a tripwire artifact (unpickling it raises)."""

from satchel.flows import FlowSpec, Parameter, step
from tests.functions.trained import TinyModel, Tripwire


class TinyTrainFlow(FlowSpec):
    weight = Parameter("weight", default=2.0)

    @step
    def start(self):
        self.points = [(0.0, 1.0), (1.0, 1.0 + self.weight)]
        self.next(self.fit)

    @step
    def fit(self):
        (x0, y0), (x1, y1) = self.points
        slope = (y1 - y0) / (x1 - x0)
        self.model = TinyModel(slope, y0 - slope * x0)
        self.meta = {"trained_on": len(self.points), "kind": "tiny"}
        self.tripwire = Tripwire()
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    TinyTrainFlow()
