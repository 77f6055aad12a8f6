"""Under CI (the CI environment variable set) hypothesis replays a fixed, derandomized set of
examples: a counterexample found by chance is a bug to fix at a desk, not a coin toss that
decides whether a submission lands.  At a desk the exploration stays random."""
from __future__ import annotations

import gc
import json
import os
import signal

import pytest
from hypothesis import settings

settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")


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

    # a mutant dies at its first failing test (-x): the quickest tests first (timed by mutmut's
    # stats run).  On a sample of 80 killed mutants: 12% less CPU than the focused rule tests
    # first, which often spent seconds on a slow rule test a quick one would have failed before.
    seconds = _test_seconds()
    items.sort(key=lambda item: seconds.get(item.nodeid, 0.0))
    setattr(config, _MUTATION_SECONDS, seconds)


#: make mutation: each test's time in mutmut's stats run (mutants/mutmut-stats.json)
_MUTATION_SECONDS = "anondiff_mutation_seconds"


def _test_seconds() -> dict[str, float]:
    try:
        with open("mutmut-stats.json", encoding="utf-8") as f:
            return dict(json.load(f)["duration_by_test"])
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _out_of_time(signum, frame) -> None:  # type: ignore[no-untyped-def]
    """Die as mutmut's own CPU limit kills a worker (SIGXCPU): mutmut reports a timeout."""
    signal.signal(signal.SIGXCPU, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGXCPU)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):  # type: ignore[no-untyped-def]
    """make mutation: a mutant that loops for ever (a walk that never ends, a split that never
    shrinks) is stopped in the first test that runs 10 times its own time plus 2 s of CPU,
    not after 3 times the time of all its tests (mutmut's limit: 17 looping mutants then cost
    1,336 s, a tenth of a whole run).  CPU time (ITIMER_PROF), so a loaded machine stops none
    too soon; a test's own time, so a mutant that only slows one test down tenfold is a
    timeout too, as a user would notice."""
    seconds = getattr(item.config, _MUTATION_SECONDS, None)
    if seconds is None or "__mutmut_" not in os.environ.get("MUTANT_UNDER_TEST", ""):
        yield
        return
    signal.signal(signal.SIGPROF, _out_of_time)
    signal.setitimer(signal.ITIMER_PROF, 10 * seconds.get(item.nodeid, 1.0) + 2.0)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
