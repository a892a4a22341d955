"""Values a flow stores and a function bound to its task reads back: plain Python, no dependencies."""

from __future__ import annotations


class TinyModel:
    """y = weight * x + bias."""

    def __init__(self, weight: float, bias: float) -> None:
        self.weight = weight
        self.bias = bias

    def predict(self, x: float) -> float:
        return self.weight * x + self.bias


def _trip(name: str) -> None:
    raise RuntimeError(f"the {name} artifact was unpickled")


class Tripwire:
    """Pickles fine; unpickling it raises, so a test can prove an artifact was never loaded."""

    def __reduce__(self) -> tuple:
        return (_trip, ("tripwire",))
