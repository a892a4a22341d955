"""The function we ship: predict iris species with a model bound at export time."""

from __future__ import annotations

import satchel

# Pin exactly the scikit-learn and numpy that train the model, so the pickled model loads in the worker.
ENVIRONMENT = satchel.Environment.from_current(["scikit-learn", "numpy"])


@satchel.function(environment=ENVIRONMENT)
def predict(model, rows: list[list[float]]) -> list[int]:
    """Predict the class of each row (sepal length, sepal width, petal length, petal width)."""
    return [int(label) for label in model.predict(rows)]
