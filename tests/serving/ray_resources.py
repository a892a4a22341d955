"""What the Ray this test process joined has handed out, read from Ray itself."""

from __future__ import annotations


def reserved_cpus() -> float:
    """Logical CPUs held now on the joined Ray (Serve's controller, proxy and our gateway hold none)."""
    import ray

    return ray.cluster_resources().get("CPU", 0.0) - ray.available_resources().get("CPU", 0.0)


def wait_until_idle(timeout: float = 90.0) -> None:
    """Until no CPU is held on the joined Ray: actors of an earlier test (Serve replicas being shut down,
    flow tasks) release theirs asynchronously, and a test that counts CPUs must start from none."""
    from tests.waiting import wait_until

    wait_until(lambda: reserved_cpus() == 0.0, timeout=timeout, what="the shared Ray to hold no CPU")
