"""Benchmark functions over numpy arrays and Arrow tables, in an environment pinning this venv's versions."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

import satchel

DATA = satchel.Environment.from_current(["numpy", "pyarrow"], python="3.11")


@satchel.function(environment=DATA)
def echo_array(x: np.ndarray) -> np.ndarray:
    return x


@satchel.function(environment=DATA)
def echo_table(t: pa.Table) -> pa.Table:
    return t
