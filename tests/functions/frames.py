"""Functions over a DataFrame and a numpy array, in an environment that has pandas, pyarrow and numpy."""

from __future__ import annotations

import numpy as np
import pandas as pd

import satchel

FRAMES = satchel.Environment(python="3.11", pypi=["pandas==3.1.1", "pyarrow==26.0.1", "numpy==2.4.6"])


@satchel.function(environment=FRAMES)
def columns(df: pd.DataFrame) -> list[str]:
    """A table's column names, then its number of rows and the first index label."""
    return [*map(str, df.columns), str(len(df)), str(df.index[0]) if len(df) else ""]


@satchel.function(environment=FRAMES)
def total(x: np.ndarray) -> float:
    """The sum of an array's items, times its number of dimensions."""
    return float(x.sum()) * x.ndim
