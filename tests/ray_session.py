"""One local Ray for a pytest process (`ray.init(num_cpus=2)`), shared by every test that needs it:
Ray is slow to start on a small machine. Its temp dir and logs stay under pytest's tmp area."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def ray_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The local Ray's GCS address (for `--ray-address`); stopped at the end unless it was already up."""
    ray = pytest.importorskip("ray")
    started = not ray.is_initialized()
    if started:
        for attempt in range(3):  # a raylet has 30 s to register: not always enough on a loaded machine
            try:
                ray.init(
                    address="local",
                    num_cpus=2,
                    include_dashboard=False,
                    log_to_driver=False,
                    _temp_dir=str(tmp_path_factory.mktemp("ray")),
                )
                break
            except Exception as exc:  # noqa: BLE001
                ray.shutdown()
                if attempt == 2 or "timed out during startup" not in str(exc):
                    raise
    yield ray.get_runtime_context().gcs_address
    if started:
        ray.shutdown()
