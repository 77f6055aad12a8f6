"""A kernel tree and its patches in a scenario's ``policies:``: a relative path is read from the
scenario's folder, as a .py policy's is (README, "Your own policy"); absolute paths stay as they
are, and a scenario from standard input reads them from the current directory.  Skipped without
gcc or Debian's linux-source-6.1 tarball (the tree61 fixture of test_ktree_errors)."""
from __future__ import annotations

import difflib
from pathlib import Path

import pytest
from click.testing import CliRunner

from anondiff.cli import main

from .test_ktree_errors import copy_tree, tree61  # noqa: F401 (a fixture)

SCENARIO = """\
description: A faulted VMA, forked.
policies: [{policies}]
processes:
  - name: P
    vmas:
      - {{name: A, start: 0x10000, pages: 1, prot: rw, faulted: true}}
steps:
  - {{fork: P, child: C}}
"""


def folder(tree61: Path, tmp_path: Path) -> Path:  # noqa: F811
    """tmp_path/scen holding a copy of the tree (t61) and a patch to its mm/rmap.c (a comment
    changed): fix.diff."""
    scen = tmp_path / "scen"
    tree = copy_tree(tree61, scen / "t61")
    old = (tree / "mm" / "rmap.c").read_text().splitlines(keepends=True)
    new = list(old)
    new[1] = new[1].replace("reverse mappings", "reverse mappings (patched)")
    assert new != old
    (scen / "fix.diff").write_text("".join(difflib.unified_diff(old, new, "a/mm/rmap.c",
                                                                "b/mm/rmap.c")))
    return scen


def run(*args: str, input: str | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, ["run", *args, "--final-only", "--format", "list"],
                              input=input)


def test_tree_and_patch_are_relative_to_the_scenario(tree61: Path, tmp_path: Path,  # noqa: F811
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    scen = folder(tree61, tmp_path)
    (scen / "s.yaml").write_text(SCENARIO.format(policies=f"t61+fix.diff, {scen / 't61'}, v6.1"))
    monkeypatch.chdir(tmp_path)         # not the scenario's folder: no t61 here
    r = run("scen/s.yaml")
    assert r.exit_code == 0, r.output
    # the names as before: the tree's version, the patch's file name
    assert "== 6.1.176 + fix.diff:" in r.stdout
    assert "== 6.1.176:" in r.stdout and "== v6.1:" in r.stdout
    # a '+' in the tree's name: the parts are grouped by what is in the scenario's folder
    (scen / "t+61").symlink_to("t61")
    (scen / "plus.yaml").write_text(SCENARIO.format(policies="t+61+fix.diff"))
    r = run("scen/plus.yaml")
    assert r.exit_code == 0, r.output
    assert "== 6.1.176 + fix.diff:" in r.stdout


def test_a_missing_tree_is_looked_for_in_the_scenarios_folder(
        tree61: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """The tree in the current directory and not in the scenario's folder: not found there, one
    line naming the scenario, the line and the entry."""
    scen = folder(tree61, tmp_path)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "s.yaml").write_text(SCENARIO.format(policies="t61, v6.1"))
    monkeypatch.chdir(scen)
    r = run(str(tmp_path / "elsewhere" / "s.yaml"))
    assert r.exit_code == 2
    assert r.output == (f"anondiff: {tmp_path / 'elsewhere' / 's.yaml'}:2: policies[0]: "
                        "t61: no such kernel tree or tarball\n")


def test_a_scenario_from_stdin_reads_them_from_the_current_directory(
        tree61: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    scen = folder(tree61, tmp_path)
    text = SCENARIO.format(policies="t61+fix.diff")
    monkeypatch.chdir(scen)
    r = run("-", input=text)
    assert r.exit_code == 0, r.output
    assert "== 6.1.176 + fix.diff:" in r.stdout
    monkeypatch.chdir(tmp_path)
    r = run("-", input=SCENARIO.format(policies="scen/t61+scen/fix.diff"))
    assert r.exit_code == 0, r.output
    assert "== 6.1.176 + fix.diff:" in r.stdout
    r = run("-", input=SCENARIO.format(policies="./t61"))
    assert r.exit_code == 2
    assert r.output == "anondiff: <stdin>: policies[0]: ./t61: no such kernel tree or tarball\n"


def test_in_folder_without_a_compiler(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """policies.in_folder on a directory that only looks like a tree (Makefile and mm/): what
    is rewritten for get() and what is left alone."""
    from anondiff.policies import in_folder
    scen = tmp_path / "scen"
    (scen / "t61" / "mm").mkdir(parents=True)
    (scen / "t61" / "Makefile").write_text("VERSION = 6\n")
    (scen / "fix.diff").write_text("")
    (tmp_path / "t61").mkdir()               # in the current directory: never taken
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    f = str(scen)
    assert in_folder("t61", f) == f"{f}/t61"
    assert in_folder("t61+fix.diff", f) == f"{f}/t61+{f}/fix.diff"
    assert in_folder("t61+nope.diff", f) == f"{f}/t61+{f}/nope.diff"
    assert in_folder(f"{f}/t61+fix.diff", f) == f"{f}/t61+{f}/fix.diff"
    assert in_folder("~/scen/t61+fix.diff", f) == f"{f}/t61+{f}/fix.diff"
    assert in_folder("mine.py", f) == f"{f}/mine.py"
    assert in_folder("~/mine.py", f) == f"{tmp_path}/mine.py"
    assert in_folder("/abs/mine.py", f) == "/abs/mine.py"
    for name in ("degree", "v6.12", "v9.9", "nonsense", "t61+fix.diff"):
        assert in_folder(name, "") == name
    for name in ("degree", "v6.12", "v9.9", "nonsense", "nonsense+x.diff"):
        assert in_folder(name, f) == name
    (tmp_path / "other").mkdir()
    assert in_folder("t61", str(tmp_path / "other")) == f"{tmp_path}/other/t61"
