"""Issue 6's patch test: a patch made at test time on Debian's 7.2 tree, used as a policy.

The patch turns 7.2's reuse rule in maybe_reuse_anon_vma() (no active VMA and at most one
child) into the degree-style one (active VMAs + children < 2). ``anondiff compare`` of the
tree against the patched tree must show exactly the differences that the same change shows
in the Python model (``clone-rework-2026`` against a subclass with that rule): where
expected, and nowhere else. Needs the C side (anondiff.ktree.policy), gcc and the cached
linux-source-7.2 tarball (``python -m anondiff.ktree.debian linux-source-7.2``).
"""
from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from anondiff.cli import main
from anondiff.ktree import debian
from anondiff.ktree.source import open_tree, parse_spec

pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("anondiff.ktree.policy") is None,
                       reason="needs anondiff.ktree.policy (the compiled tree policy)"),
    pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc"),
    pytest.mark.skipif(shutil.which("diff") is None, reason="needs diff(1)"),
]

RULE_7_2 = """\
	if (anon_vma->num_active_vmas > 0)
		return;
	if (anon_vma->num_children > 1)
		return;
"""
RULE_DEGREE = """\
	if (anon_vma->num_active_vmas + anon_vma->num_children >= 2)
		return;
"""

SCENARIO = """\
description: |
  A and B adjacent, sharing AV0 (not merged: other protections), C apart; all
  faulted.  P forks C1, C1 forks C2, C1 exits, C2 forks C3.
processes:
  - name: P
    vmas:
      - {name: A, start: 0x10000, pages: 1, prot: rw, faulted: true, anon_vma: AV0}
      - {name: B, start: 0x11000, pages: 1, prot: r, faulted: true, anon_vma: AV0}
      - {name: C, start: 0x20000, pages: 2, prot: rw, faulted: true}
steps:
  - {fork: P, child: C1}
  - {fork: C1, child: C2}
  - exit: C1
  - {fork: C2, child: C3}
"""

# The same rule change in the Python model: the oracle for "where expected".
ORACLE = """\
from anondiff.policies.clone_rework_2026 import CloneRework2026


class DegreeRule(CloneRework2026):
    name = "clone-rework-2026-degree-rule"

    def maybe_reuse_anon_vma(self, k, dst, av):
        if dst.anon_vma is not None:
            return
        if av.num_active_vmas + av.num_children >= 2:
            return
        dst.anon_vma = av
        k.counters.vma_attached(av)
"""


@pytest.fixture(scope="module")
def tarball() -> Path:
    path = debian.cached("linux-source-7.2")
    if path is None:
        pytest.skip("linux-source-7.2 not fetched: python -m anondiff.ktree.debian "
                    "linux-source-7.2")
    return path


def compare(a: str, b: str, scenario: Path) -> tuple[int, dict]:
    result = CliRunner().invoke(main, ["compare", "-p", a, b, str(scenario), "--format", "json"])
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.output)


def test_degree_rule_patch_differs_where_expected_and_nowhere_else(
        tarball: Path, tmp_path: Path) -> None:
    tree = open_tree(parse_spec(str(tarball)))  # type: ignore[arg-type]
    rmap = tree.read("mm/rmap.c")
    assert rmap is not None and rmap.count(RULE_7_2) == 1, "7.2's reuse rule not found"
    for side, text in (("a", rmap), ("b", rmap.replace(RULE_7_2, RULE_DEGREE))):
        (tmp_path / side / "mm").mkdir(parents=True)
        (tmp_path / side / "mm" / "rmap.c").write_text(text)
    made = subprocess.run(["diff", "-u", "a/mm/rmap.c", "b/mm/rmap.c"], cwd=tmp_path,
                          capture_output=True, text=True)
    assert made.returncode == 1, made.stderr
    patch = tmp_path / "degree-rule.diff"
    patch.write_text(made.stdout)
    scenario = tmp_path / "fork-exit-fork.yaml"
    scenario.write_text(SCENARIO)
    oracle = tmp_path / "degree_rule.py"
    oracle.write_text(ORACLE)

    status, c_diff = compare(str(tarball), f"{tarball}+{patch}", scenario)
    assert "7.2.13 + degree-rule.diff" in c_diff["b"]["policy"]
    py_status, py_diff = compare("clone-rework-2026", str(oracle), scenario)
    assert (status, py_status) == (1, 1)
    assert c_diff["differences"] == py_diff["differences"]
    # Where: the children forked after the rule matters (C1 shares its anon_vmas with C2, so
    # C2's are not new and C3's chains are one shorter); P is the same in every snapshot.
    changed = {d["vma"] for snap in c_diff["differences"] for d in snap["vmas"]}
    assert changed and all(v.startswith(("C2/", "C3/")) for v in changed), changed

    # And each side is the Python model of its rule, step by step.
    assert compare(str(tarball), "clone-rework-2026", scenario)[0] == 0
    assert compare(f"{tarball}+{patch}", str(oracle), scenario)[0] == 0


def test_two_patches_of_one_file_name_get_different_names(
        tarball: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """compare -p T+v1/fix.diff -p T+v2/fix.diff: two different policies, both "7.2.13 +
    fix.diff" until they were told apart by the patches' paths as given."""
    tree = open_tree(parse_spec(str(tarball)))  # type: ignore[arg-type]
    rmap = tree.read("mm/rmap.c")
    assert rmap is not None and rmap.count(RULE_7_2) == 1, "7.2's reuse rule not found"
    (tmp_path / "a" / "mm").mkdir(parents=True)
    (tmp_path / "a" / "mm" / "rmap.c").write_text(rmap)
    for version, text in (("v1", rmap.replace(RULE_7_2, RULE_DEGREE)),
                          ("v2", rmap.replace(RULE_7_2, "/* v2 */\n" + RULE_7_2))):
        (tmp_path / "b" / "mm").mkdir(parents=True, exist_ok=True)
        (tmp_path / "b" / "mm" / "rmap.c").write_text(text)
        made = subprocess.run(["diff", "-u", "a/mm/rmap.c", "b/mm/rmap.c"], cwd=tmp_path,
                              capture_output=True, text=True)
        assert made.returncode == 1, made.stderr
        (tmp_path / version).mkdir()
        (tmp_path / version / "fix.diff").write_text(made.stdout)
    (tmp_path / "fork-exit-fork.yaml").write_text(SCENARIO)
    monkeypatch.chdir(tmp_path)
    status, out = compare(f"{tarball}+v1/fix.diff", f"{tarball}+v2/fix.diff",
                          Path("fork-exit-fork.yaml"))
    assert status == 1
    assert (out["a"]["policy"], out["b"]["policy"]) == ("7.2.13 + v1/fix.diff",
                                                        "7.2.13 + v2/fix.diff")
    # a name shared by no other policy is left as it was
    status, out = compare(str(tarball), f"{tarball}+v2/fix.diff", Path("fork-exit-fork.yaml"))
    assert (status, out["a"]["policy"], out["b"]["policy"]) == (0, "7.2.13", "7.2.13 + fix.diff")
