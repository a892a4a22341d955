"""A function over numpy arrays, in an environment that has numpy (the caller's module imports it)."""

from __future__ import annotations

import numpy as np

import satchel

NUMPY = satchel.Environment(python="3.11", pypi=["numpy==2.1.3"])


@satchel.function(environment=NUMPY)
def normalize(x: np.ndarray) -> np.ndarray:
    """Scale an array to unit maximum."""
    return x / np.abs(x).max()


@satchel.function(environment=satchel.Environment(python="3.11"))
def lacks_numpy(x: int) -> int:
    """Its module imports numpy, which its environment does not have."""
    return x
