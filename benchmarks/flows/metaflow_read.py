"""Benchmark client read (Metaflow): every foreach task's artifact of the latest successful run.
Prints the seconds taken after imports, and the values' sum as a check."""

import time

from metaflow import Flow, namespace

namespace(None)
t0 = time.perf_counter()
run = Flow("BenchForeachFlow").latest_successful_run
values = [task.data.value for task in run["square"]]
elapsed = time.perf_counter() - t0
assert len(values) == 50, len(values)
print(elapsed, sum(values))
