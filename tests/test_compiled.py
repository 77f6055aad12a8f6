"""The mypyc-compiled kernel model (anondiff/_compiled.py, anondiff/_build.py): it is what runs
by default once built, it is never used for sources it was not built from, and it gives the
pure-Python model's bytes (ANONDIFF_PURE=1, in a subprocess) on every shipped scenario under
every policy and on random sequences. The whole suite runs both ways (``ANONDIFF_PURE=1 make
test`` for the pure path); the goldens pin the bytes each way."""
from __future__ import annotations

import hashlib
import importlib
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from anondiff import _compiled

ROOT = Path(__file__).resolve().parent.parent
PURE = os.environ.get("ANONDIFF_PURE", "") not in ("", "0")


def _can_build() -> bool:
    try:
        import mypyc  # noqa: F401
    except ImportError:
        return False
    return shutil.which("gcc") is not None or shutil.which("cc") is not None


needs_build = pytest.mark.skipif(PURE or not _can_build(),
                                 reason="ANONDIFF_PURE=1, or no mypyc/gcc to build the model")


def _python(code: str, pure: bool, cwd: Path = ROOT) -> str:
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    env.pop("ANONDIFF_PURE", None)
    if pure:
        env["ANONDIFF_PURE"] = "1"
    done = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def digest_scenarios() -> str:
    """A line per shipped scenario and policy: the SHA-256 of its JSON and its table."""
    from tests.golden import SCENARIOS, policies
    from anondiff.engine import replay
    from anondiff.render import RenderOptions, formatter, text
    from anondiff.scenario import load

    opts = RenderOptions()
    lines = []
    for path in SCENARIOS:
        sc = load(str(path.relative_to(ROOT)))
        for policy in policies():
            rep = replay(sc, policy)
            out = "".join(text(formatter(f).render_run([rep], opts)) for f in ("json", "table"))
            lines.append(f"{path.stem} {policy} {hashlib.sha256(out.encode()).hexdigest()}")
    return "\n".join(lines) + "\n"


def digest_random(count: int) -> str:
    """Random small scenarios (bench/randomsc.py) under three policies: each replay's JSON
    (every snapshot, findings, events), with the full recount of the invariant checks and with
    the incremental one."""
    from bench.randomsc import scenario
    from anondiff.engine import replay_many
    from anondiff.render import RenderOptions, formatter, text

    opts = RenderOptions()
    scenarios = [scenario(seed) for seed in range(count)]
    h = hashlib.sha256()
    for checks in ("incremental", "full"):
        for rep in replay_many(scenarios, ["split-counters", "degree", "wei-4e4a9eb92133"],
                               checks=checks):
            h.update(text(formatter("json").render_run([rep], opts)).encode())
    return h.hexdigest() + "\n"


def digest_generated(count: int) -> str:
    """Scenarios drawn by the search's generator (compiled with the model) under two budgets,
    as the YAML the search writes: what a seed gives must not depend on the build."""
    from anondiff.search.generate import Budget, generate

    def canon(x):                                # type: ignore[no-untyped-def]
        # the records with their type names; sets sorted (their order is the string hash's)
        if isinstance(x, (set, frozenset)):
            return sorted(x)
        if isinstance(x, tuple):
            return [type(x).__name__] + [canon(v) for v in x]
        return x

    h = hashlib.sha256()
    for budget in (Budget(), Budget(processes=3, vmas=2, steps=8, generations=2)):
        for i in range(count):
            h.update(repr(canon(generate(7, i, budget))).encode())
    return h.hexdigest() + "\n"


def _modules_are_extensions() -> dict[str, bool]:
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    return {name: importlib.import_module(name).__file__.endswith(suffix)
            for name in _compiled.MODULES}


@needs_build
def test_the_compiled_model_is_what_runs_by_default():
    assert _compiled.active is not None, (
        "no compiled model built from these sources: `make .venv/.installed` (or "
        "`python -m anondiff._build`) builds it")
    assert all(_modules_are_extensions().values()), _modules_are_extensions()
    # and ANONDIFF_PURE=1 runs the Python modules
    out = _python("from tests.test_compiled import _modules_are_extensions as m; print(m())",
                  pure=True)
    assert "True" not in out and "False" in out


@needs_build
def test_the_compiled_model_gives_the_pure_models_bytes_on_every_scenario_and_policy():
    assert digest_scenarios() == _python(
        "from tests.test_compiled import digest_scenarios as d; print(d(), end='')", pure=True)


@needs_build
def test_the_compiled_model_gives_the_pure_models_bytes_on_random_sequences():
    assert digest_random(60) == _python(
        "from tests.test_compiled import digest_random as d; print(d(60), end='')", pure=True)


@needs_build
def test_the_compiled_generator_draws_the_pure_generators_scenarios():
    import pickle
    from anondiff.search.generate import Budget
    assert digest_generated(300) == _python(
        "from tests.test_compiled import digest_generated as d; print(d(300), end='')", pure=True)
    # a Budget stays a Python dataclass: it goes to worker processes with every chunk
    budget = Budget(steps=5, events=("fork", "write"))
    assert pickle.loads(pickle.dumps(budget)) == budget


@needs_build
def test_an_edited_source_never_meets_a_stale_build(tmp_path):
    """A copy of the package with one model file changed (as a mutation tool's mutant is) has
    another key: it imports the Python modules, and runs the edit."""
    assert _compiled.active is not None
    shutil.copytree(ROOT / "anondiff", tmp_path / "anondiff",
                    ignore=shutil.ignore_patterns("__pycache__"))
    probe = ("import anondiff, anondiff.kernel.rmap as r, anondiff._compiled as c; "
             "print(anondiff.__file__, r.__file__, c.active, getattr(r, 'EDITED', None))")
    # unchanged copy: same key, the same build
    out = _python(probe, pure=False, cwd=tmp_path).split()
    assert out[0].startswith(str(tmp_path)) and not out[1].endswith(".py")
    assert out[2] == _compiled.active
    rmap = tmp_path / "anondiff" / "kernel" / "rmap.py"
    rmap.write_text(rmap.read_text() + "\nEDITED = 1\n")
    out = _python(probe, pure=False, cwd=tmp_path).split()
    assert out[1] == str(rmap) and out[2:] == ["None", "1"]


def test_interpreted_subclasses_of_compiled_classes_work():
    """A policy's own counters class, and explain's and --metrics' replayers, subclass compiled
    classes from Python."""
    from anondiff.engine import _Replayer, replay
    from anondiff.kernel.counters import SplitCounters
    from anondiff.policies.split_counters import SplitCountersPolicy
    from anondiff.scenario import load

    calls = []

    class Counting(SplitCounters):
        def vma_attached(self, av):        # type: ignore[no-untyped-def]
            calls.append(av)
            super().vma_attached(av)

    class Mine(SplitCountersPolicy):
        name = "mine"
        counters = Counting()

    sc = load("scenarios/seed-thread.yaml")
    mine, ref = replay(sc, Mine()), replay(sc, "split-counters")
    assert calls and mine.final.findings == ref.final.findings

    class Replayer(_Replayer):
        steps_seen = 0

        def do(self, step):                # type: ignore[no-untyped-def]
            Replayer.steps_seen += 1
            super().do(step)

    Replayer(sc, Mine()).replay()
    assert Replayer.steps_seen == len(sc.steps)


def test_without_a_c_compiler_the_build_says_so_in_one_line_and_succeeds(tmp_path, monkeypatch,
                                                                          capsys):
    """make .venv/.installed on a machine without gcc: one line, exit status 0, no build (the
    package then runs as Python)."""
    from anondiff import _build

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(_build, "_compiler", lambda: None)
    assert _build.build() == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pure Python" in err
    assert "no C compiler" in err or "mypyc is not installed" in err
    assert not (tmp_path / "anondiff" / "mypyc" / _compiled.key()).exists()
