"""``make mutation``'s own rules (issue 12): the list of equivalent mutants is well formed, a
listed equivalent is run again exactly when the code its verdict rests on changed, and a mutant
that loops for ever is stopped early and reported as mutmut reports a timeout."""
from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from tests.mutation_report import EQUIVALENT, equivalent_pins, pin

ROOT = Path(__file__).resolve().parent.parent


def test_every_listed_equivalent_has_a_pin_and_a_reason() -> None:
    names = [line.partition(" ")[0] for line in EQUIVALENT.read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert len(names) == len(set(names)), "a mutant listed twice"
    listed = equivalent_pins()
    assert len(listed) > 200
    for name, (pinned, why) in listed.items():
        assert re.fullmatch(r"anondiff\.(kernel\.|policies\.|engine\.)\S+__mutmut_\d+", name), name
        assert re.fullmatch(r"[0-9a-f]{12}", pinned), f"{name}: no pin"
        assert len(why) > 20, f"{name}: no reason"


HASHES = {"m.x_f": "1", "m.x_caller": "2", "m.x_callee": "3", "m.x_other": "4"}
CALLERS = {"m.x_f": {"m.x_caller"}, "m.x_callee": {"m.x_f"}, "m.x_other": {"m.x_other2"}}


def test_a_pin_holds_while_the_function_and_its_neighbours_are_unchanged() -> None:
    before = pin("m.x_f__mutmut_3", HASHES, CALLERS)
    assert before is not None
    assert pin("m.x_f__mutmut_7", HASHES, CALLERS) == before          # one pin per function
    assert pin("m.x_f__mutmut_3", {**HASHES, "m.x_other": "5"}, CALLERS) == before
    for changed in ("m.x_f", "m.x_caller", "m.x_callee"):
        assert pin("m.x_f__mutmut_3", {**HASHES, changed: "9"}, CALLERS) != before, changed
    # a new caller (a test now reaches the function another way) is a change too
    assert pin("m.x_f__mutmut_3", HASHES, {**CALLERS, "m.x_f": {"m.x_caller", "m.x_other"}}) \
        != before
    assert pin("m.x_gone__mutmut_1", HASHES, CALLERS) is None


def test_a_looping_mutant_is_stopped_in_its_first_test_as_a_timeout(tmp_path: Path) -> None:
    """The conftest gives each test 10x its time in mutmut's stats run + 2 s of CPU, then dies
    of SIGXCPU as mutmut's own CPU limit kills a worker: status -24, a timeout in mutmut's
    report, seconds after the loop began instead of 3x the time of all the mutant's tests."""
    shutil.copy(ROOT / "tests" / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_loop.py").write_text(
        "def test_quick():\n    pass\n\n\ndef test_loops():\n    while True:\n        pass\n")
    (tmp_path / "mutmut-stats.json").write_text(json.dumps(
        {"duration_by_test": {"test_loop.py::test_quick": 0.01, "test_loop.py::test_loops": 0.01}}))
    env = {"MUTANT_UNDER_TEST": "anondiff.engine.x_replay__mutmut_1", "PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                          "test_loop.py::test_quick", "test_loop.py::test_loops"],
                         cwd=tmp_path, env=env, capture_output=True, timeout=60)
    assert run.returncode == -signal.SIGXCPU, run.stdout.decode()[-500:]


#: The test files mutmut does not run against mutants, and why (a file in neither list is a
#: new test file someone forgot: mutmut would never run it, so the mutants it kills survive)
NOT_SELECTED = {
    "test_compiled": "the mypyc build of the model against its sources (minutes, not the rules)",
    "test_incremental_checks": "hypothesis sequences against the full recount (minutes); "
                               "test_mutation_checks holds the two to each other quickly",
    "test_live": "the running kernel",
    "test_mutation_harness": "make mutation's own rules",
    "test_output": "output files, pipes and signals of the CLI",
    "test_progress": "the progress bar, drawn on a terminal only",
    "test_scenario_lines": "the scenario loader's line reader",
    "test_search": "the search CLI (subprocesses, minutes)",
    "test_search_generate": "the search's scenario generator",
    "test_stateful": "hypothesis state machine (minutes)",
}


def test_every_test_file_is_in_the_mutants_selection_or_said_why_not() -> None:
    """setup.cfg's pytest_add_cli_args_test_selection names the files mutmut runs against a
    mutant; every other test file is named above with the reason (the ktree and render files:
    other code than the model's rules)."""
    cfg = (ROOT / "setup.cfg").read_text()
    selection = cfg.partition("pytest_add_cli_args_test_selection =")[2]
    selected = set(re.findall(r"tests/(test_\w+)\.py",
                              selection.partition("pytest_add_cli_args =")[0]))
    assert "test_engine" in selected and "test_mutation_checks" in selected
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        name = path.stem
        if name.startswith(("test_ktree_", "test_render_")):
            continue
        assert (name in selected) != (name in NOT_SELECTED), \
            f"{name}: add it to setup.cfg's mutmut test selection or to NOT_SELECTED"
