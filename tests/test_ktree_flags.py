"""Soft-dirty, the guard marker and vm_ops->close under a kernel tree: the merge rules are read
from the tree's own include/linux/mm.h and mm/vma.c (mm/mmap.c) and must be its era's
(anondiff.ktree.recipe.merge_rules), and every case of tests/test_merge_flags.py (faulted or not)
must come out as under the tree's Python policy."""
from __future__ import annotations

import pytest

from anondiff.engine import replay
from anondiff.policies import get
from anondiff.scenario import loads

from .test_ktree_equivalence import TREES, differences, tree_policy


def vma(name: str, start: int, end: int, prot: str = "rw", flags: tuple[str, ...] = (),
        faulted: bool = False) -> str:
    out = f"name: {name}, start: {start:#x}, end: {end:#x}, prot: {prot}"
    if flags:
        out += f", flags: [{', '.join(flags)}]"
    return out + (", faulted: true" if faulted else "")


S, C, SC = ("softdirty",), ("close",), ("softdirty", "guard", "close")
#: (name, VMAs, steps): the situations of tests/test_merge_flags.py, some with anon_vmas
CASES = [
    ("ignored-flag-merges", [vma("A", 0x10000, 0x12000, flags=("guard",), faulted=True),
                             vma("B", 0x12000, 0x13000, "r", faulted=True)],
     ["mprotect: P/B, prot: rw"]),
    ("softdirty-goes-with-it", [vma("A", 0x10000, 0x12000),
                                vma("B", 0x12000, 0x13000, "r", S, faulted=True)],
     ["mprotect: P/B, prot: rw"]),
    ("anon-vma-compatible", [vma("A", 0x10000, 0x11000, faulted=True),
                             vma("B", 0x11000, 0x12000, flags=S),
                             vma("C", 0x12000, 0x13000, flags=("noreserve",))],
     ["write: P/B", "write: P/C"]),
    ("sticky-merge-right", [vma("V", 0x2000, 0x6000, "r", SC, faulted=True),
                            vma("N", 0x6000, 0x9000, "rw", C)],
     ["mprotect: P/V, offset: 1, prot: rw"]),
    ("sticky-merge-left", [vma("Q", 0x10000, 0x13000, "rw", ("close",), faulted=True),
                           vma("V", 0x13000, 0x17000, "r", SC)],
     ["mprotect: P/V, pages: 3, prot: rw"]),
    ("mmap-next-to-softdirty", [vma("A", 0x10000, 0x12000, flags=S, faulted=True)],
     ["mmap: P, name: B, start: 0x12000, pages: 1, prot: rw"]),
    ("close-new-range", [vma("P0", 0x10000, 0x13000), vma("N", 0x15000, 0x19000, flags=C)],
     ["mmap: P, name: new, start: 0x13000, pages: 2, prot: rw"]),
    ("close-middle-into-prev", [vma("P0", 0x10000, 0x13000, faulted=True),
                                vma("V", 0x13000, 0x15000, "r", C)],
     ["mprotect: P/V, prot: rw"]),
    ("close-middle-into-next", [vma("V", 0x13000, 0x15000, "r", C, faulted=True),
                                vma("N", 0x15000, 0x19000)],
     ["mprotect: P/V, prot: rw"]),
    ("close-middle-between", [vma("P0", 0x10000, 0x13000), vma("V", 0x13000, 0x15000, "r", C),
                              vma("N", 0x15000, 0x19000, faulted=True)],
     ["mprotect: P/V, prot: rw", "fork: P, child: Q", "write: Q/P0"]),
    ("close-next-has-close", [vma("P0", 0x10000, 0x13000, faulted=True),
                              vma("V", 0x13000, 0x15000, "r"),
                              vma("N", 0x15000, 0x19000, flags=C, faulted=True)],
     ["mprotect: P/V, prot: rw"]),
    ("new-with-close", [vma("A", 0x10000, 0x12000, flags=C, faulted=True),
                        vma("B", 0x15000, 0x17000, flags=C)],
     ["mmap: P, name: new, start: 0x12000, pages: 3, prot: rw", "write: P/B"]),
    ("close-shares-anon-vma", [vma("A", 0x10000, 0x11000, flags=C, faulted=True),
                               vma("B", 0x11000, 0x12000, flags=C)],
     ["write: P/B", "fork: P, child: Q", "write: Q/A"]),
]


def scenario(vmas: list[str], steps: list[str]) -> str:
    return ("description: merge flags\nprocesses:\n  - name: P\n    vmas:\n"
            + "".join(f"      - {{{v}}}\n" for v in vmas)
            + "steps:\n" + "".join(f"  - {{{s}}}\n" for s in steps))


EXPECTED = {"5.10": (frozenset(), "neighbour", False),
            "6.1": (frozenset(), "neighbour", False),
            "6.12": (frozenset(), "removed", True),
            "7.2": (frozenset({"softdirty", "guard"}), "removed", True)}


@pytest.mark.parametrize("version", sorted(TREES))
def test_merge_rules_read_from_the_tree(version: str) -> None:
    tree = tree_policy(version)
    python = get(TREES[version])
    got = (tree.sticky_flags, tree.close_forbids, tree.merge_nomem_fails)
    assert got == EXPECTED[version]
    assert got == (python.sticky_flags, python.close_forbids, python.merge_nomem_fails)
    # remap_move() (v6.17+): the 7.2 tree moves several VMAs with one MREMAP_FIXED call
    assert tree.mremap_moves_several is python.mremap_moves_several is (version == "7.2")
    # sys_mremap()'s vma_lookup() before mremap_to()'s checks (v5.16 .. v6.15), not in 7.2's
    # check_mremap_params() code nor in 5.10 (vma_to_resize() in mremap_to())
    assert tree.mremap_finds_vma_first is python.mremap_finds_vma_first is \
        (version in ("6.1", "6.12"))
    # MREMAP_DONTUNMAP of private anonymous VMAs only before v5.13
    assert tree.mremap_dontunmap == python.mremap_dontunmap == \
        ("anon" if version == "5.10" else "any")
    # __vma_adjust() of 5.10 and 6.1 imports middle's anon_vma first, the 6.12+ merge code next's
    assert tree.merge_both_exports_next is python.merge_both_exports_next is \
        (version not in ("5.10", "6.1"))
    # dup_mmap(): no vm_prev at anon_vma_fork(), VM_WIPEONFORK children unfaulted (v5.6+)
    assert tree.dup_mmap == python.dup_mmap == ("none", "empty")


@pytest.mark.parametrize("version", sorted(TREES))
@pytest.mark.parametrize("name,vmas,steps", CASES, ids=[c[0] for c in CASES])
def test_flags_same_as_python(version: str, name: str, vmas: list[str], steps: list[str]) -> None:
    sc = loads(scenario(vmas, steps), f"{name}.yaml")
    ours, theirs = replay(sc, tree_policy(version)), replay(sc, get(TREES[version]))
    problems = differences(ours.final, theirs.final)
    assert not problems, "\n".join(problems)


def test_the_comparison_sees_the_close_rule() -> None:
    """The 6.1 tree merges V (with ->close) into P0, the 6.12 tree does not: the rules differ
    and the comparison would notice a tree read wrongly."""
    name, vmas, steps = next(c for c in CASES if c[0] == "close-middle-into-prev")
    sc = loads(scenario(vmas, steps), "f.yaml")
    old, new = replay(sc, tree_policy("6.1")).final, replay(sc, tree_policy("6.12")).final
    assert [v.name for v in old.process("P").vmas] == ["P0"]
    assert [v.name for v in new.process("P").vmas] == ["P0", "V"]


REMAP_SEVERAL = """
description: one MREMAP_FIXED move of the same size over three VMAs (remap_move(), v6.17+)
processes:
  - name: P
    vmas:
      - {name: A, start: 0x10000, pages: 2, faulted: true}
      - {name: B, start: 0x12000, pages: 2, prot: r}
      - {name: C, start: 0x15000, pages: 2, faulted: true}
steps:
  - {mremap: P, start: 0x11000, pages: 7, flags: [maymove, fixed], to: 0x40000}
"""


@pytest.mark.parametrize("version", sorted(TREES))
def test_mremap_of_several_vmas_as_the_tree_has_it(version: str) -> None:
    """The 7.2 tree has remap_move(): the move succeeds as under clone-rework-2026; 6.1 and
    6.12 refuse it (EFAULT) as v6.1 and v6.12 do."""
    from anondiff.errors import ReplayError
    sc = loads(REMAP_SEVERAL, "remap-several.yaml")
    if version != "7.2":
        for policy in (tree_policy(version), get(TREES[version])):
            with pytest.raises(ReplayError, match="EFAULT"):
                replay(sc, policy)
        return
    ours, theirs = replay(sc, tree_policy(version)), replay(sc, get(TREES[version]))
    assert [v.name for v in ours.final.process("P").vmas] == ["A", "A.1", "B", "C"]
    assert not differences(ours.final, theirs.final)
