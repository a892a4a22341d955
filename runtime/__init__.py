"""Runtime: turns a bundle back into something callable (fetch, verify, environments, workers, proxy).

Kept import-free: the worker imports `satchel.runtime.worker` with only part of Satchel present.
"""
