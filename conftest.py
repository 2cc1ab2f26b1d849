"""Repository-wide pytest configuration: Hypothesis profiles and device parametrisation helpers.

Profiles:
- ``ci``: derandomized, bounded example counts, no deadline.  Chosen automatically when ``CI`` is set.
- ``dev``: the default on a workstation; random, moderate example counts.
- ``nightly``: many examples, for a long scheduled run (``HYPOTHESIS_PROFILE=nightly``).
"""

from __future__ import annotations

import os

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
