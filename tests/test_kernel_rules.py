"""Kernel rules pinned by the kernel's own tests, translated, and by small scenarios whose
docstring gives the kernel reason.  Each one fails when its rule is changed (issue 12's two
survivors first)."""
from __future__ import annotations

import pytest

from anondiff.engine import replay
from anondiff.policies import ERA_VARIANTS, names
from anondiff.scenario import loads
from anondiff.topology import Topology

EVERY = names() + [c.name for c in ERA_VARIANTS]


def run(text: str, policy: str) -> Topology:
    return replay(loads(text, "rules.yaml"), policy).final


def spans(t: Topology, proc: str) -> list[tuple[int, int]]:
    return [(v.start, v.end) for v in t.process(proc).vmas]


# LTP testcases/kernel/mem/vma/vma01.c: t = mmap(3 pages, PROT_WRITE), written; fork; the child
# writes t, maps u = mmap(t + 3 pages, 3 pages, PROT_WRITE) and writes u: /proc/self/maps must
# show two 3-page VMAs.
VMA01 = """
description: LTP vma01
processes:
  - name: P
    vmas:
      - {name: t, start: 0x100000, pages: 3, prot: w, faulted: [0]}
steps:
  - {fork: P, child: C}
  - {write: C/t, pages: [0]}
  - {mmap: C, name: u, start: 0x103000, pages: 3, prot: w}
  - {write: C/u, pages: [0]}
""".replace(", pages_faulted: [0]", "")


@pytest.mark.parametrize("policy", EVERY)
def test_ltp_vma01_a_cloned_vma_does_not_merge(policy: str) -> None:
    """commit 965f55dea0e3 ("mmap: avoid merging cloned VMAs"): is_mergeable_anon_vma() lets
    a VMA without anon_vma merge into one that has one only if that one's chain is singular
    (list_is_singular); the child's t has [own, parent's].  The 2025 three-case rule keeps it
    (case 2: the target is a fork child)."""
    t = run(VMA01, policy)
    assert spans(t, "C") == [(0x100000, 0x103000), (0x103000, 0x106000)]


# tools/testing/selftests/mm/merge.c, TEST_F(merge, forked_target_vma): 5 pages mapped RW,
# page 0 written, fork; the child writes all 5 pages and maps 5 more RW right after: not merged.
FORKED_TARGET = """
description: merge.c forked_target_vma
processes:
  - name: P
    vmas:
      - {name: ptr, start: 0x201000, pages: 5, prot: rw, faulted: [0]}
steps:
  - {fork: P, child: C}
  - {write: C/ptr}
  - {mmap: C, name: ptr2, start: 0x206000, pages: 5, prot: rw}
"""


@pytest.mark.parametrize("policy", EVERY)
def test_merge_c_forked_target_vma(policy: str) -> None:
    """The same rule from the target's side (commit 965f55dea0e3; case 2 of the three-case
    rule): ptr in the child is a fork child, ptr2 may not be merged into it."""
    t = run(FORKED_TARGET, policy)
    assert spans(t, "C")[0] == (0x201000, 0x206000)


# merge.c, TEST_F(merge, forked_source_vma): the child maps ptr2 RWX after the forked ptr, then
# makes ptr RWX too: no merge, because ptr (the source of the merge) was forked.
FORKED_SOURCE = """
description: merge.c forked_source_vma
processes:
  - name: P
    vmas:
      - {name: ptr, start: 0x201000, pages: 5, prot: rw, faulted: [0]}
steps:
  - {fork: P, child: C}
  - {write: C/ptr}
  - {mmap: C, name: ptr2, start: 0x206000, pages: 5, prot: rwx}
  - {mprotect: C/ptr, prot: rwx}
"""


@pytest.mark.parametrize("policy", EVERY)
def test_merge_c_forked_source_vma(policy: str) -> None:
    """Case 1 of the three-case rule (target without anon_vma, source a fork child: refused,
    else ptr2 would import an anon_vma whose chain it cannot copy); the old rule refuses it
    too (the target's empty chain is not singular)."""
    t = run(FORKED_SOURCE, policy)
    assert spans(t, "C") == [(0x201000, 0x206000), (0x206000, 0x20b000)]


EXCLUSIVE_AFTER_PARENT_EXIT = """
description: the parent exits; the child's write finds the page exclusively its own
processes:
  - name: P
    vmas:
      - {name: A, start: 0x10000, pages: 1, prot: rw, faulted: true, anon_vma: AV0}
steps:
  - {fork: P, child: C}
  - {exit: P}
  - {write: C/A}
"""


@pytest.mark.parametrize("policy", EVERY)
def test_write_to_an_exclusive_page_moves_it_to_the_vmas_anon_vma(policy: str) -> None:
    """do_wp_page() reuses a page only one VMA maps and moves it to that VMA's anon_vma
    (page_move_anon_rmap(), since commit c44b674323f4 ("rmap: move exclusively owned pages to
    own anon_vma in do_wp_page()"); folio_move_anon_rmap() today): no copy, and the page now
    belongs to C's own anon_vma, not the exited parent's AV0."""
    t = run(EXCLUSIVE_AFTER_PARENT_EXIT, policy)
    a = t.vma("C/A")
    assert [p.name for p in a.pages] == ["pg0"]
    assert a.pages[0].mapping == a.anon_vma != "AV0"


@pytest.mark.parametrize("counters,values,expected", [
    ("DegreeCounters", {"degree": 2}, ["anon_vma->degree (2)"]),
    ("SplitCounters", {"num_children": 1}, ["anon_vma->num_children (1)"]),
    ("SplitCounters", {"num_active_vmas": 3}, ["anon_vma->num_active_vmas (3)"]),
    ("SplitCounters", {"num_children": 1, "num_active_vmas": 1},
     ["anon_vma->num_children (1)", "anon_vma->num_active_vmas (1)"]),
    ("SplitCounters", {}, []),
])
def test_unlink_phase_two_warns_with_the_counter_and_its_value(
        counters: str, values: dict[str, int], expected: list[str]) -> None:
    """unlink_anon_vmas() phase 2: VM_WARN_ON(anon_vma->degree) (commit 7a3ef208e662), then
    VM_WARN_ON(anon_vma->num_children) and VM_WARN_ON(anon_vma->num_active_vmas) (commit
    2555283eb40d), each naming the counter left over.  No correct policy reaches them, so no
    scenario shows them: the text a user would see is pinned here."""
    from anondiff.kernel import counters as module
    from anondiff.kernel.objects import AnonVma

    av = AnonVma()
    for field, value in values.items():
        setattr(av, field, value)
    assert getattr(module, counters)().warnings_at_free(av) == expected


MREMAP_SELF_MERGE = """
description: found by anondiff search; an unfaulted VMA moved next to itself and a faulted one
processes:
  - name: P
    vmas:
      - {name: SRC1, start: 0x10000, pages: 1, prot: rw}
      - {name: SRC2, start: 0x12000, pages: 1, prot: rw, faulted: []}
steps:
  - {mremap: P/SRC1, flags: [maymove, fixed], to: 0x11000}
"""


@pytest.mark.parametrize("policy", EVERY)
def test_mremap_of_an_unfaulted_vma_may_merge_with_itself(policy: str) -> None:
    """copy_vma() decides faulted_in_anon_vma before vma_merge_new_range(): an unfaulted
    anonymous VMA (its pgoff reset to the destination) may merge with itself and import a
    neighbour's anon_vma on the way, which is no VM_BUG_ON_VMA (mm/vma.c copy_vma())."""
    t = run(MREMAP_SELF_MERGE, policy)
    assert not [f for f in t.findings if f.kind == "VM_BUG_ON"]
