"""Under CI (the CI environment variable set) hypothesis replays a fixed, derandomized set of
examples: a counterexample found by chance is a bug to fix at a desk, not a coin toss that
decides whether a submission lands.  At a desk the exploration stays random."""
from __future__ import annotations

import gc
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


#: make mutation: the slowest tests of the selection (a survivor runs every test that reached
#: its function, and these took 10 of the 27 s a survivor of the step loop cost), run only for
#: the mutants of the code they are about: test id -> the mutant name prefixes that keep it.
#: A mutant elsewhere that changes what they would see changes a replay that test_golden,
#: test_kernel_runs and the rule tests compare too.  (): never under mutmut: the CLI's
#: subprocess start and shell completion, and the golden directory's file list, are no rule.
_MUTATION_ONLY_FOR = {
    "tests/test_mutation_checks.py::test_findings_many_and_replay_many_match_replay":
        ("anondiff.engine.",),
    "tests/test_mutation_checks.py::test_the_scenarios_find_every_kind_of_violation":
        ("anondiff.kernel.checks.", "anondiff.engine."),
    "tests/test_metrics.py::test_measured_replay_is_the_replay": ("anondiff.engine.",),
    "tests/test_cli.py::test_python_dash_m": (),
    "tests/test_cli.py::test_shell_completion_offers_policy_names": (),
    "tests/test_golden.py::test_no_stale_goldens": (),
}


#: make mutation: mutmut names each test that reached the mutated function on the command line,
#: up to 1,400 node ids, and pytest resolves each id by walking its file's collected tree again
#: (1.2 s of a mutant's run, most of a killed mutant's cost): collect each file once instead
#: and keep the named tests (the same tests, in the same order below).
_MUTATION_WANTED = "anondiff_mutation_wanted"


def pytest_configure(config) -> None:  # type: ignore[no-untyped-def]
    if "__mutmut_" not in os.environ.get("MUTANT_UNDER_TEST", "") or not config.args:
        return
    if not all("::" in arg for arg in config.args):
        return
    files = dict.fromkeys(arg.partition("::")[0] for arg in config.args)
    setattr(config, _MUTATION_WANTED, frozenset(config.args))
    config.args[:] = list(files)
    # the forked worker's heap is the whole collected suite: pytest's collection of unraisable
    # exceptions at exit (gc.collect() twice) walks it all; a verdict needs no such report
    gc.freeze()


def pytest_collection_modifyitems(config, items) -> None:  # type: ignore[no-untyped-def]
    if "MUTANT_UNDER_TEST" not in os.environ:
        return
    wanted = getattr(config, _MUTATION_WANTED, None)
    if wanted is not None:
        keep = [item for item in items if item.nodeid in wanted]
        if len(keep) < len(items):
            config.hook.pytest_deselected(items=[i for i in items if i not in keep])
            items[:] = keep
    mutant = os.environ["MUTANT_UNDER_TEST"]
    if "__mutmut_" in mutant:
        keep = [item for item in items if item.nodeid not in _MUTATION_ONLY_FOR
                or mutant.startswith(_MUTATION_ONLY_FOR[item.nodeid] or ("\0",))]
        if keep and len(keep) < len(items):
            config.hook.pytest_deselected(items=[i for i in items if i not in keep])
            items[:] = keep

    def rank(item) -> int:  # type: ignore[no-untyped-def]
        module = item.nodeid.rpartition("/")[2].partition(".py")[0]
        return _MUTATION_ORDER.index(module) if module in _MUTATION_ORDER else len(_MUTATION_ORDER)

    items.sort(key=rank)
