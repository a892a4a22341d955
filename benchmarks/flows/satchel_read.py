"""Benchmark client read (Satchel flows): every foreach task's artifact of the latest successful run.
Prints the seconds taken after imports, and the values' sum as a check."""

import time

from satchel.flows import Flow

t0 = time.perf_counter()
run = Flow("BenchForeachFlow").latest_successful_run
values = [task.data.value for task in run["square"].tasks]
elapsed = time.perf_counter() - t0
assert len(values) == 50, len(values)
print(elapsed, sum(values))
