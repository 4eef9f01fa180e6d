"""Settings every test shares: a bounded hypothesis profile, so property tests stay quick and repeatable in CI."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# CI (and `make test`) runs a bounded number of examples with no deadline (a shared 2-core machine is
# noisy); HYPOTHESIS_PROFILE=thorough explores more when someone hunts a bug locally.
settings.register_profile("ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow],
                          derandomize=True, database=None)
settings.register_profile("thorough", max_examples=2000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
