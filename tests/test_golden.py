"""Every scenario under every policy, in every format, against its reviewed golden file."""
from __future__ import annotations

import os

import pytest

from .golden import FORMATS, GOLDEN, ROOT, SCENARIOS, extra, path, policies, render

CASES = [(sc, p) for sc in SCENARIOS for p in policies()]


@pytest.fixture(autouse=True)
def _at_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


@pytest.mark.parametrize("scenario,policy", CASES, ids=[f"{s.stem}-{p}" for s, p in CASES])
def test_golden(scenario, policy) -> None:  # type: ignore[no-untyped-def]
    for ext, text in render(scenario, policy).items():
        p = path(scenario, policy, ext)
        assert p.exists(), f"{p} missing: run 'make golden' and review it"
        assert text == p.read_text(), f"{p} differs: run 'make golden' and review the diff"


def test_no_stale_goldens() -> None:
    wanted = {path(sc, p, ext) for sc, p in CASES for ext in FORMATS} | set(extra())
    present = {f for f in GOLDEN.rglob("*") if f.is_file()}
    assert present == wanted


@pytest.mark.parametrize("ext", ["ascii", "list", "txt", "dot", "json"])
def test_goldens_have_no_trailing_spaces(ext: str) -> None:
    for f in sorted(GOLDEN.rglob(f"*.{ext}")):
        for n, line in enumerate(f.read_text().splitlines(), 1):
            assert line == line.rstrip(), f"{f}:{n}: trailing whitespace"
            if ext != "dot":  # DOT is indented with tabs, as the graphviz package writes it
                assert "\t" not in line, f"{f}:{n}: tab"


@pytest.mark.parametrize("ext", ["ascii", "list"])
def test_mail_goldens_fit_72_columns(ext: str) -> None:
    for f in sorted(GOLDEN.rglob(f"*.{ext}")):
        for n, line in enumerate(f.read_text().splitlines(), 1):
            assert len(line) <= 72, f"{f}:{n}: {len(line)} columns"
            assert line.isascii(), f"{f}:{n}: not ASCII"


@pytest.mark.parametrize("fmt", ["table", "json", "ascii", "dot"])
def test_output_is_byte_identical_across_runs(fmt: str) -> None:
    """Different hash seeds, fresh interpreters: the same bytes (no set or dict order leaks)."""
    import subprocess
    import sys

    outs = set()
    for seed in ("1", "2", "3"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        outs.add(subprocess.run(
            [sys.executable, "-m", "anondiff", "run", "scenarios/cve-2022-42703.yaml",
             "--format", fmt], cwd=ROOT, env=env, capture_output=True, check=False).stdout)
    assert len(outs) == 1 and len(next(iter(outs))) > 1000
