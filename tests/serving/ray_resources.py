"""What the Ray this test process joined has handed out, read from Ray itself."""

from __future__ import annotations


def reserved_cpus() -> float:
    """Logical CPUs held now on the joined Ray (Serve's controller, proxy and our gateway hold none)."""
    import ray

    return ray.cluster_resources().get("CPU", 0.0) - ray.available_resources().get("CPU", 0.0)
