"""``make mutation``: ``mutmut run``, except that a mutant tests/mutation-equivalent.txt explains
is not run again while what its verdict rests on is unchanged (its pin: the source of its
function and of the functions next to it in mutmut's call graph, see mutation_report.pin).
A survivor runs every test that reaches its function, so the 221 equivalents were a third of a
whole run; they are judged again when their code changes, or all of them (whatever verdicts
mutants/ keeps) with MUTATION_RECHECK=1.  Arguments are mutmut's (``python -m tests.mutation_run --max-children 2``)."""
from __future__ import annotations

import os
import sys

import mutmut.__main__ as mutmut_main
from mutmut.state import state

from tests.mutation_report import equivalent_pins, pin

_collect = mutmut_main.collect_source_file_mutation_data


def _collect_skipping_equivalents(*, mutant_names):  # type: ignore[no-untyped-def]
    mutants, by_path = _collect(mutant_names=mutant_names)
    if mutant_names:
        return mutants, by_path          # names given: mutmut runs them whatever they were
    listed = equivalent_pins()
    recheck = bool(os.environ.get("MUTATION_RECHECK"))
    hashes, callers = state().current_function_hashes, state().function_dependencies
    out = []
    for data, name, result in mutants:
        pinned = listed.get(name, ("", ""))[0]
        if recheck and name in listed:
            result = data.exit_code_by_key[name] = None      # judged again, pin or no pin
            data.save()
        elif result is None and pinned and pin(name, hashes, callers) == pinned:
            data.exit_code_by_key[name] = 0          # survived, as when it was judged
            data.save()
            result = 0
        out.append((data, name, result))
    return out, by_path


mutmut_main.collect_source_file_mutation_data = _collect_skipping_equivalents

_stats = mutmut_main.collect_or_load_stats


def _stats_of_every_test_when_code_moved(runner, **kwargs):  # type: ignore[no-untyped-def]
    """mutmut traces again only the tests that are new since its last stats: a function added
    or changed since (a method split out of another) kept only the new tests' mapping, so its
    mutants ran one test and "survived" (small3's engine.mprotect: 1 test of 2,700).  When any
    function's source moved, every test is traced again (a minute); MUTATION_FULL_STATS=1
    forces it."""
    _stats(runner, **kwargs)
    old, now = state().old_function_hashes, state().current_function_hashes
    if os.environ.get("MUTATION_FULL_STATS") or (
            old and any(old.get(name) != h for name, h in now.items())):
        mutmut_main.run_stats_collection(runner)


mutmut_main.collect_or_load_stats = _stats_of_every_test_when_code_moved

if __name__ == "__main__":
    # mutmut's pytest runs in mutants/ import mutants/tests as the package `tests`: this
    # checkout's `tests`, imported to run this file, would stand in its way (a resumed run's
    # collection failed with pytest's usage error)
    for loaded in [m for m in sys.modules if m == "tests" or m.startswith("tests.")]:
        del sys.modules[loaded]
    sys.argv = ["mutmut", "run", *sys.argv[1:]]
    mutmut_main.cli()
