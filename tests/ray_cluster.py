"""The one local Ray cluster of the Ray tests: ``from tests.ray_cluster import ray_cluster  # noqa: F401`` in a test
module gives it a module-scoped ``ray_cluster`` fixture (2 CPUs, no dashboard, quiet), shut down after the module.
Modules that import it skip cleanly when ray is not installed (``pytest.importorskip`` there)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    if ray.is_initialized():  # a leftover session would hide the settings below
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="error")
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()
