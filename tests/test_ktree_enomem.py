"""``enomem: N`` under a kernel tree: the N-th allocation from the C slab (shim/glue.c's
kmem_cache_alloc(), counted across the step's calls into the tree) fails, the tree's OWN error
paths run (anon_vma_clone()'s enomem_failure, anon_vma_fork()'s out_error paths, the 2026
cleanup_partial_anon_vmas(), __anon_vma_prepare()'s out_enomem), and the Python mm layer reacts
as for a Python policy.  For every N up to one past the step's last allocation, in forks of
chains, faults, splits, munmap, mremap and merges, each Debian tree must give the same snapshots,
findings and notes as its Python policy."""
from __future__ import annotations

import pytest

from anondiff.engine import replay
from anondiff.policies import get
from anondiff.scenario import loads

from .test_ktree_equivalence import ROOT, TREES, differences, tree_policy

#: P forks C, so each of C's VMAs has a chain of two; a third, written in C, a chain of one
LAYOUT = """description: enomem under a tree
processes:
  - name: P
    vmas:
      - {name: A, start: 0x10000, pages: 3, prot: rw, faulted: true}
      - {name: B, start: 0x20000, pages: 2, prot: rw, faulted: true}
      - {name: N, start: 0x30000, pages: 1, prot: rw}
      - {name: Y, start: 0x40000, pages: 2, prot: rw}
      - {name: M, start: 0x50000, pages: 1, prot: rw}
      - {name: R, start: 0x51000, pages: 1, prot: r}
      - {name: X, start: 0x52000, pages: 1, prot: rw, faulted: true}
steps:
  - {fork: P, child: C}
  - {write: C/A}
"""
#: the step under test, with {n} for N
STEPS = {
    "fork": "{fork: C, child: G, enomem: %d}",
    "fork-after-exit": "{exit: P}\n  - {fork: C, child: G, enomem: %d}",
    "fault": "{write: C/Y, pages: [1, 0], enomem: %d}",
    "split": "{mprotect: C/A, pages: 1, prot: r, enomem: %d}",
    "munmap": "{munmap: C/A, offset: 1, pages: 1, enomem: %d}",
    "mremap": "{mremap: C/B, flags: [maymove, fixed], to: 0x60000, enomem: %d}",
    "merge": "{mprotect: P/R, prot: rw, enomem: %d}",
}


def scenario(step: str, n: int) -> str:
    return LAYOUT + "  - " + STEPS[step] % n + "\n  - {fork: C, child: H}\n  - {write: H/B}\n"


def notes(t) -> list[str]:  # type: ignore[no-untyped-def]
    return [f.detail for f in t.findings if f.kind == "NOTE"]


@pytest.mark.parametrize("version", sorted(TREES))
@pytest.mark.parametrize("step", sorted(STEPS))
def test_every_nth_same_as_python(version: str, step: str) -> None:
    """N from 1 until the step makes fewer than N allocations (the note says none failed)."""
    tree, python = tree_policy(version), get(TREES[version])
    failed = 0
    for n in range(1, 40):
        sc = loads(scenario(step, n), f"{step}-{n}.yaml")
        ours, theirs = replay(sc, tree), replay(sc, python)
        problems = differences(ours.final, theirs.final)
        assert not problems, f"{step}, enomem: {n}:\n" + "\n".join(problems)
        assert notes(ours.final) == notes(theirs.final)
        if any("none failed" in note for note in notes(theirs.final)):
            break
        failed += 1
    else:
        raise AssertionError(f"{step}: still failing at enomem: 39")
    if step != "merge" or version != "6.1":
        assert failed >= 1, f"{step}: no allocation to fail"


@pytest.mark.parametrize("version", sorted(TREES))
@pytest.mark.parametrize("path", ["scenarios/enomem-fork.yaml", "scenarios/enomem-merge.yaml"])
def test_shipped_enomem_scenarios(version: str, path: str) -> None:
    sc = loads((ROOT / path).read_text(), path)
    ours, theirs = replay(sc, tree_policy(version)), replay(sc, get(TREES[version]))
    assert [s.label for s in ours.snapshots] == [s.label for s in theirs.snapshots]
    for a, b in zip(ours.snapshots, theirs.snapshots):
        assert not differences(a, b), f"{path} @ {a.label}:\n" + "\n".join(differences(a, b))
    assert notes(ours.final) == notes(theirs.final)
    assert any("enomem: allocation" in note or "-ENOMEM" in note for note in notes(ours.final))


def test_the_failing_function_is_the_trees() -> None:
    """The note names the function the C allocation was made in: before 2026 the second
    allocation of a fork of a one-chain VMA is anon_vma_fork()'s anon_vma (anon_vma_clone()
    copied the chain first); the 7.2 tree preallocates: the anon_vma is the first, its chain the
    second, both in anon_vma_fork()."""
    text = LAYOUT + "  - {fork: P, child: G, enomem: 2}\n"
    got = {v: notes(replay(loads(text, "t.yaml"), tree_policy(v)).final)[0] for v in ("6.1", "7.2")}
    assert got["6.1"].startswith("enomem: allocation 2 of the step (anon_vma in anon_vma_fork())")
    assert got["7.2"].startswith(
        "enomem: allocation 2 of the step (anon_vma_chain in anon_vma_fork())")
