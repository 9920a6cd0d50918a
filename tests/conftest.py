"""Shared pytest configuration: hypothesis profiles and fixtures."""

from __future__ import annotations

import os

import lowdim
import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# "ci" (default): reproducible and quick.  "dev": more examples, random seeds, e.g.
#   HYPOTHESIS_PROFILE=dev pytest tests
settings.register_profile(
    "ci",
    deadline=None,
    max_examples=25,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "dev",
    deadline=None,
    max_examples=300,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def rng():
    """A fresh, fixed-seed numpy Generator per test."""
    return np.random.default_rng(12345)


@pytest.fixture
def restore_threads():
    """Restore lowdim's thread count after a test that changes it."""
    old = lowdim.get_num_threads()
    try:
        yield old
    finally:
        lowdim.set_num_threads(old)
