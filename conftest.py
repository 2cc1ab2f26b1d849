"""Repository-wide pytest configuration: Hypothesis profiles and the ``cuda`` marker's skip.

The ``cuda`` marker says a test exercises a CUDA path; it is what ``pytest -m cuda`` (and the device check,
``make gpu-check``) selects.  Without a CUDA device:
- ``@pytest.mark.cuda`` skips the test ("needs a CUDA device"), so no test body needs its own ``skipif``;
- ``@pytest.mark.cuda(optional=True)`` leaves it to run: the test uses CUDA when present and the CPU (or its
  own ``skipif``) otherwise.

Profiles:
- ``ci``: derandomized, bounded example counts, no deadline.  Chosen automatically when ``CI`` is set.
- ``dev``: the default on a workstation; random, moderate example counts.
- ``nightly``: many examples, for a long scheduled run (``HYPOTHESIS_PROFILE=nightly``).
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=25,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "dev",
    max_examples=50,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "nightly",
    max_examples=1000,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

_default_profile = "ci" if os.environ.get("CI") else "dev"
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", _default_profile))


NO_CUDA_REASON = "needs a CUDA device"


def needs_cuda_device(item: pytest.Item) -> bool:
    """Whether ``item`` carries the ``cuda`` marker without ``optional=True`` (it cannot run without CUDA)."""
    marker = item.get_closest_marker("cuda")
    return marker is not None and not marker.kwargs.get("optional", False)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip every test that needs a CUDA device when none is visible (torch is imported only if one does)."""
    marked = [item for item in items if needs_cuda_device(item)]
    if not marked:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason=NO_CUDA_REASON)
    for item in marked:
        item.add_marker(skip)
