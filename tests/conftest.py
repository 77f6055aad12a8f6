"""Under CI (the CI environment variable set) hypothesis replays a fixed, derandomized set of
examples: a counterexample found by chance is a bug to fix at a desk, not a coin toss that
decides whether a submission lands.  At a desk the exploration stays random."""
from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")
