"""Under CI (the CI environment variable set) hypothesis replays a fixed, derandomized set of
examples: a counterexample found by chance is a bug to fix at a desk, not a coin toss that
decides whether a submission lands.  At a desk the exploration stays random."""
from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")

#: make mutation (mutmut sets MUTANT_UNDER_TEST): a mutant dies at its first failing test (-x),
#: so the focused rule tests run first and the broad golden/CLI/parser tests last
_MUTATION_ORDER = ("test_mutation_rules", "test_kernel_rules", "test_policies", "test_engine",
                   "test_enomem", "test_merge_flags", "test_expand", "test_mremap", "test_offsets",
                   "test_kernel_runs", "test_explain", "test_mutation_checks", "test_golden")


def pytest_collection_modifyitems(config, items) -> None:  # type: ignore[no-untyped-def]
    if "MUTANT_UNDER_TEST" not in os.environ:
        return

    def rank(item) -> int:  # type: ignore[no-untyped-def]
        module = item.nodeid.rpartition("/")[2].partition(".py")[0]
        return _MUTATION_ORDER.index(module) if module in _MUTATION_ORDER else len(_MUTATION_ORDER)

    items.sort(key=rank)
