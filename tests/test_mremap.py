"""mremap(): moves, in-place growth and shrinking, MREMAP_FIXED / MAYMOVE / DONTUNMAP.

Most cases are the kernel's own tests translated: tools/testing/selftests/mm/merge.c (the
``merge`` and ``merge_with_fork`` fixtures, read in the linux-mm tree @ 6c207318be61), named by
their TEST_F function.  Their PROT_NONE "carveout" only gives the mappings neighbours that merge
with nothing read-write, so the translations leave it out and place the mappings in empty space
(an mremap with MREMAP_FIXED over the carveout unmaps it first, which changes no merge).  The
selftests run on a 2025+ kernel (the three-case merge rule with ``copied_from``): their
expectations are those of ``split-counters`` (6.18.y) and ``clone-rework-2026``; the older rule
(``v6.1``) refuses the faulted-into-unfaulted merges, and before v5.7 there is no
MREMAP_DONTUNMAP at all.
"""
from __future__ import annotations

import pytest

from anondiff.engine import replay
from anondiff.errors import ReplayError
from anondiff.kernel.mremap import MREMAP_FLAGS
from anondiff.scenario import MREMAP_FLAGS as SCENARIO_MREMAP_FLAGS
from anondiff.scenario import loads
from anondiff.topology import Topology

PS = 0x1000
C = 0x100000                      # where the selftests' carveout would be
FAR = 0x40000000                  # "ptr + page_size * 1000": somewhere free, far away
NEW_RULE = ("split-counters", "clone-rework-2026")
OLD_RULE = ("v6.1", "degree", "always-new")
EVERY = NEW_RULE + OLD_RULE + ("v5.10", "mirror-parent", "v2")
INFORMATIONAL = {"NOTE", "MERGED", "MERGE_REFUSED"}


def run(steps: str, policy: str, vmas: str = "") -> Topology:
    text = ("description: mremap test\nprocesses:\n  - name: P\n    vmas:\n" + (vmas or "      []\n")
            + "steps:\n" + steps)
    if not vmas:
        text = text.replace("    vmas:\n      []\n", "    vmas: []\n")
    return replay(loads(text, "m.yaml"), policy).final


def spans(t: Topology, proc: str = "P") -> list[tuple[int, int]]:
    return [(v.start, v.end) for v in t.process(proc).vmas]


def problems(t: Topology) -> list[str]:
    return [f"{f.kind} {f.where} {f.detail}" for f in t.findings if f.kind not in INFORMATIONAL]


def mmap(name: str, at: int, pages: int, proc: str = "P", prot: str = "rw") -> str:
    return f"  - {{mmap: {proc}, name: {name}, start: {at:#x}, pages: {pages}, prot: {prot}}}\n"


def move(target: str, to: int, extra: str = "", flags: str = "maymove, fixed") -> str:
    return f"  - {{mremap: {target}, flags: [{flags}], to: {to:#x}{extra}}}\n"


def test_flag_lists_agree() -> None:
    assert MREMAP_FLAGS == SCENARIO_MREMAP_FLAGS


# -- tools/testing/selftests/mm/merge.c, fixture "merge" ---------------------------------------

@pytest.mark.parametrize("policy", EVERY)
def test_mremap_unfaulted_to_faulted(policy: str) -> None:
    """merge.c mremap_unfaulted_to_faulted: an unfaulted VMA moved far away (its pgoff follows
    it) and back next to a faulted one merges with it, in every era (case 2 / a singular
    target chain)."""
    steps = (mmap("ptr", C + PS, 5) + mmap("ptr2", C + 7 * PS, 5)
             + move("P/ptr2", FAR)
             + "  - {write: P/ptr, pages: [0]}\n"
             + move("P/ptr2", C + 6 * PS))
    t = run(steps, policy)
    assert spans(t) == [(C + PS, C + 11 * PS)]
    assert t.vma("P/ptr").anon_vma is not None and problems(t) == []


@pytest.mark.parametrize("policy", EVERY)
def test_mremap_unfaulted_behind_faulted(policy: str) -> None:
    """merge.c mremap_unfaulted_behind_faulted: the moved unfaulted VMA merges with the faulted
    one after it, which grows down and keeps its anon_vma."""
    steps = (mmap("ptr", C + 6 * PS, 5) + mmap("ptr2", C + 14 * PS, 5)
             + move("P/ptr2", FAR)
             + "  - {write: P/ptr, pages: [0]}\n"
             + move("P/ptr2", C + PS))
    t = run(steps, policy)
    assert spans(t) == [(C + PS, C + 11 * PS)]
    [vma] = t.process("P").vmas
    assert vma.name == "ptr" and vma.pgoff == (C + PS) >> 12
    assert [(p.addr, p.index) for p in vma.pages] == [(C + 6 * PS, (C + 6 * PS) >> 12)]
    assert problems(t) == []


@pytest.mark.parametrize("policy", EVERY)
def test_mremap_unfaulted_between_faulted(policy: str) -> None:
    """merge.c mremap_unfaulted_between_faulted: between two faulted VMAs with different
    anon_vmas the moved one merges with the previous only."""
    steps = (mmap("ptr", C + PS, 5) + mmap("ptr2", C + 7 * PS, 5) + mmap("ptr3", C + 14 * PS, 5)
             + move("P/ptr3", FAR + 0x1000000) + move("P/ptr2", FAR)
             + "  - {write: P/ptr, pages: [0]}\n  - {write: P/ptr3, pages: [0]}\n"
             + move("P/ptr3", C + 11 * PS) + move("P/ptr2", C + 6 * PS))
    t = run(steps, policy)
    assert spans(t) == [(C + PS, C + 11 * PS), (C + 11 * PS, C + 16 * PS)]
    assert problems(t) == []


@pytest.mark.parametrize("policy", EVERY)
def test_mremap_unfaulted_between_faulted_unfaulted(policy: str) -> None:
    """merge.c mremap_unfaulted_between_faulted_unfaulted: faulted, moved, unfaulted: all three
    merge into the faulted one."""
    steps = (mmap("ptr", C + PS, 5) + mmap("ptr2", C + 7 * PS, 5) + mmap("ptr3", C + 14 * PS, 5)
             + move("P/ptr3", FAR + 0x1000000) + move("P/ptr2", FAR)
             + "  - {write: P/ptr, pages: [0]}\n"
             + move("P/ptr3", C + 11 * PS) + move("P/ptr2", C + 6 * PS))
    t = run(steps, policy)
    assert spans(t) == [(C + PS, C + 16 * PS)]
    assert problems(t) == []


@pytest.mark.parametrize("policy", EVERY)
def test_mremap_unfaulted_between_correctly_placed_faulted(policy: str) -> None:
    """merge.c mremap_unfaulted_between_correctly_placed_faulted: the two halves of one faulted
    mapping (same anon_vma, linear pgoff) and an unfaulted VMA moved into the hole: one VMA."""
    steps = (mmap("ptr", C + PS, 15) + "  - {write: P/ptr, pages: [0]}\n"
             + f"  - {{munmap: P, start: {C + 6 * PS:#x}, pages: 5}}\n"
             + mmap("ptr2", C + 20 * PS, 5) + move("P/ptr2", C + 6 * PS))
    t = run(steps, policy)
    assert spans(t) == [(C + PS, C + 16 * PS)]
    assert problems(t) == []


def part(at: int, to: int, name: str) -> str:
    """mremap(at, 5 pages, 5 pages, MREMAP_MAYMOVE | MREMAP_FIXED, to): the copy is ``name``."""
    return (f"  - {{mremap: P, start: {at:#x}, pages: 5, flags: [maymove, fixed], to: {to:#x}, "
            f"name: {name}}}\n")


@pytest.mark.parametrize("policy", EVERY)
def test_mremap_correct_placed_faulted(policy: str) -> None:
    """merge.c mremap_correct_placed_faulted: pieces of one faulted mapping moved away keep
    their pgoff (and their pages' index), so moved back into place they merge again (case 3:
    the same anon_vma), in any order.  (The selftest writes page 0 only; pages 5 and 10 are
    written here too, to follow every piece's page.)"""
    far2, far3, farp = FAR, FAR + 0x1000000, FAR + 0x2000000
    steps = (mmap("ptr", C + PS, 15) + "  - {write: P/ptr, pages: [0, 5, 10]}\n"
             + part(C + 11 * PS, far3, "ptr3") + part(C + 6 * PS, far2, "ptr2")
             + move("P/ptr2", C + 6 * PS))
    t = run(steps, policy)
    assert spans(t)[0] == (C + PS, C + 11 * PS)
    steps += part(C + PS, farp, "p1") + move("P/p1", C + PS)
    t = run(steps, policy)
    assert spans(t)[0] == (C + PS, C + 11 * PS)
    steps += part(C + PS, farp, "p1") + move("P/ptr3", C + 11 * PS)
    t = run(steps, policy)
    assert spans(t)[0] == (C + 6 * PS, C + 16 * PS)
    steps += move("P/p1", C + PS)
    t = run(steps, policy)
    assert spans(t) == [(C + PS, C + 16 * PS)]
    steps += part(C + 6 * PS, far2, "ptr2") + move("P/ptr2", C + 6 * PS)
    t = run(steps, policy)
    assert spans(t) == [(C + PS, C + 16 * PS)]
    steps += part(C + 11 * PS, far3, "ptr3") + move("P/ptr3", C + 11 * PS)
    t = run(steps, policy)
    assert spans(t) == [(C + PS, C + 16 * PS)]
    [vma] = t.process("P").vmas
    # every page came back to its own address, with its own index, mapped by its anon_vma
    assert [(p.addr, p.index, p.in_chain) for p in vma.pages] == [
        (C + (1 + o) * PS, ((C + (1 + o) * PS) >> 12), True) for o in (0, 5, 10)]
    assert problems(t) == []



@pytest.mark.parametrize("policy", EVERY)
def test_faulted_piece_moved_back_below_its_other_piece(policy: str) -> None:
    """copy_vma(): the source VMA itself can be merged into the copy only when it was never
    faulted (its vm_pgoff reset to the new address), hence ``VM_BUG_ON_VMA(faulted_in_anon_vma,
    new_vma)`` when the VMA the copy merged into holds the source's start.  Here the first page
    of a faulted Z is moved one page down (keeping its pgoff), then the rest of Z is moved right
    behind it: the copy merges into that first piece (the same anon_vma, pgoff linear), which
    ends exactly where the source starts, so it does not hold the source: no VM_BUG_ON, and Z
    is whole again, one page lower, with both pages.

        0x11 0x12 0x13                    Z  Z  .   ->   Z.1 Z  .   ->   Z.1 Z.1"""
    vmas = "      - {name: Z, start: 0x12000, pages: 2, faulted: true}\n"
    steps = ("  - {mremap: P/Z, offset: 0, pages: 1, flags: [maymove, fixed], to: 0x11000}\n"
             "  - {mremap: P/Z, flags: [maymove, fixed], to: 0x12000}\n")
    t = run(steps, policy, vmas)
    assert [(v.name, v.start, v.end, len(v.pages)) for v in t.process("P").vmas] == [
        ("Z.1", 0x11000, 0x13000, 2)]
    assert problems(t) == []



@pytest.mark.parametrize("offset", [0, 1])
@pytest.mark.parametrize("policy", ("split-counters", "clone-rework-2026", "v5.10"))
def test_dontunmap_of_part_of_a_vma_keeps_its_chain(policy: str, offset: int) -> None:
    """move_vma() with MREMAP_DONTUNMAP unlinks the old VMA's anon_vma chain only when the
    whole VMA moved (``if (new_vma != vma && vma->vm_start == old_addr && vma->vm_end ==
    (old_addr + old_len)) unlink_anon_vmas(vma);``, commit e346b3813067): moving either page of
    a faulted two-page VMA leaves the VMA its anon_vma and chain, for the page that stayed."""
    vmas = "      - {name: A, start: 0x10000, pages: 2, faulted: true}\n"
    t = run(f"  - {{mremap: P/A, offset: {offset}, pages: 1, flags: [maymove, dontunmap], "
            "to: 0x40000}\n", policy, vmas)
    assert [(v.name, v.start, v.end, v.anon_vma, v.chain, [p.name for p in v.pages])
            for v in t.process("P").vmas] == [
        ("A", 0x10000, 0x12000, "AV1", ("AV1",), [f"pg{1 - offset}"]),
        ("A.1", 0x40000, 0x41000, "AV1", ("AV1",), [f"pg{offset}"])]
    assert problems(t) == []



@pytest.mark.parametrize("policy", EVERY)
def test_same_size_mremap_in_place_of_part_of_a_vma_changes_nothing(policy: str) -> None:
    """do_mremap() without a move and with new_len == old_len: nothing to shrink (the
    do_vmi_munmap() of [addr + new_len, addr + old_len) is only for old_len > new_len), nothing
    to grow: the call returns addr and the VMA is not even split, whether the range ends
    inside it or at its end."""
    vmas = "      - {name: A, start: 0x10000, pages: 4, faulted: true}\n"
    for pages in (1, 2, 4):
        t = run(f"  - {{mremap: P, start: 0x10000, pages: {pages}}}\n", policy, vmas)
        assert [(v.name, v.start, v.end, len(v.pages)) for v in t.process("P").vmas] == [
            ("A", 0x10000, 0x14000, 4)]
        assert problems(t) == []


# -- tools/testing/selftests/mm/merge.c, fixture "merge_with_fork" ----------------------------

def _with_fork(setup: str, later: str, forked: bool) -> str:
    """The fixture's variants: the steps after the fork run in the child (forked) or in P."""
    if not forked:
        return setup + later.replace("{proc}", "P")
    return setup + "  - {fork: P, child: K}\n" + later.replace("{proc}", "K")


DONTUNMAP = "maymove, fixed, dontunmap"


@pytest.mark.parametrize("forked", [False, True], ids=["unforked", "forked"])
@pytest.mark.parametrize("policy", NEW_RULE + ("v6.1",))
def test_mremap_faulted_to_unfaulted_prev(policy: str, forked: bool) -> None:
    """merge.c mremap_faulted_to_unfaulted_prev: faulted A moved (MREMAP_DONTUNMAP) right after
    unfaulted B merges into B, which imports A's anon_vma (dup_anon_vma from copied_from) -- not
    when A was copied from a fork child (vma_is_fork_child(copied_from)), and not under the
    pre-2025 rule (B's empty chain is not singular)."""
    setup = mmap("A", C + 4 * PS, 3) + "  - {write: P/A, pages: [0]}\n"
    later = (move("{proc}/A", C + 20 * PS) + mmap("B", C + PS, 3, "{proc}")
             + move("{proc}/A", C + 4 * PS, flags=DONTUNMAP))
    proc = "K" if forked else "P"
    t = run(_with_fork(setup, later, forked), policy)
    merged = policy in NEW_RULE and not forked
    b = t.vma(f"{proc}/B")
    assert (b.start, b.end) == (C + PS, C + (7 if merged else 4) * PS)
    if merged:
        # B now maps A's page: it took A's anon_vma, so rmap finds it
        assert b.anon_vma is not None and [p.in_chain for p in b.pages] == [True]
    # DONTUNMAP: the old range stays mapped, empty, its chain dropped (it moved as a whole)
    old = t.process(proc).vmas[-1]
    assert (old.start, old.end, old.anon_vma, old.chain, old.pages) == (
        C + 20 * PS, C + 23 * PS, None, (), ())
    assert problems(t) == []


@pytest.mark.parametrize("forked", [False, True], ids=["unforked", "forked"])
@pytest.mark.parametrize("policy", NEW_RULE + ("v6.1",))
def test_mremap_faulted_to_unfaulted_next(policy: str, forked: bool) -> None:
    """merge.c mremap_faulted_to_unfaulted_next: the same with B after A's destination; B
    grows down over A's range."""
    setup = mmap("A", C + PS, 3) + "  - {write: P/A, pages: [0]}\n"
    later = (move("{proc}/A", C + 20 * PS) + mmap("B", C + 4 * PS, 3, "{proc}")
             + move("{proc}/A", C + PS, flags=DONTUNMAP, extra=", name: A2"))
    proc = "K" if forked else "P"
    t = run(_with_fork(setup, later, forked), policy)
    merged = policy in NEW_RULE and not forked
    first = t.process(proc).vmas[0]
    assert (first.start, first.end) == (C + PS, C + (7 if merged else 4) * PS)
    assert first.name == ("B" if merged else "A2")
    assert problems(t) == []


@pytest.mark.parametrize("forked", [False, True], ids=["unforked", "forked"])
@pytest.mark.parametrize("policy", NEW_RULE + ("v6.1",))
def test_mremap_faulted_to_unfaulted_prev_unfaulted_next(policy: str, forked: bool) -> None:
    """merge.c mremap_faulted_to_unfaulted_prev_unfaulted_next: A, moved B and C become one VMA
    (A expands over both and imports B's anon_vma), unless B comes from a fork child."""
    setup = mmap("B", C + 4 * PS, 3) + "  - {write: P/B, pages: [0]}\n"
    later = (move("{proc}/B", C + 20 * PS) + mmap("A", C + PS, 3, "{proc}")
             + mmap("Cv", C + 7 * PS, 3, "{proc}")
             + move("{proc}/B", C + 4 * PS, flags=DONTUNMAP, extra=", name: B2"))
    proc = "K" if forked else "P"
    t = run(_with_fork(setup, later, forked), policy)
    merged = policy in NEW_RULE and not forked
    if merged:
        assert spans(t, proc)[0] == (C + PS, C + 10 * PS)
        assert t.vma(f"{proc}/A").anon_vma is not None
    else:
        assert spans(t, proc)[:3] == [(C + PS, C + 4 * PS), (C + 4 * PS, C + 7 * PS),
                                      (C + 7 * PS, C + 10 * PS)]
    assert problems(t) == []


@pytest.mark.parametrize("forked", [False, True], ids=["unforked", "forked"])
@pytest.mark.parametrize("policy", NEW_RULE + ("v6.1",))
def test_mremap_faulted_to_unfaulted_prev_faulted_next(policy: str, forked: bool) -> None:
    """merge.c mremap_faulted_to_unfaulted_prev_faulted_next: B (the moved-out first half of
    BC) comes back between unfaulted A and its other half C: B and C always merge (case 3),
    A too when B is not a fork child and the rule is the 2025 one."""
    setup = mmap("BC", C + 4 * PS, 6) + "  - {write: P/BC, pages: [0]}\n"
    later = (f"  - {{mremap: {{proc}}, start: {C + 4 * PS:#x}, pages: 3, "
             f"flags: [maymove, fixed], to: {C + 20 * PS:#x}, name: B}}\n"
             + mmap("A", C + PS, 3, "{proc}")
             + move("{proc}/B", C + 4 * PS, flags=DONTUNMAP))
    later = later.replace("{{proc}}", "{proc}")
    proc = "K" if forked else "P"
    t = run(_with_fork(setup, later, forked), policy)
    if policy in NEW_RULE and not forked:
        assert spans(t, proc)[0] == (C + PS, C + 10 * PS)
    else:
        assert spans(t, proc)[:2] == [(C + PS, C + 4 * PS), (C + 4 * PS, C + 10 * PS)]
    assert problems(t) == []


# -- the spec's rules, one at a time ----------------------------------------------------------

@pytest.mark.parametrize("policy", EVERY)
def test_moved_pages_keep_mapping_and_index(policy: str) -> None:
    """move_page_tables(): page->mapping and index do not change; the new VMA's chain is a clone
    of the source's and its pgoff the source's (the index stays linear at the new address)."""
    vmas = "      - {name: A, start: 0x10000, pages: 4, faulted: true, anon_vma: AV0}\n"
    t = run(f"  - {{mremap: P/A, offset: 1, pages: 2, flags: [maymove, fixed], to: {FAR:#x}, "
            "name: M}\n", policy, vmas)
    m = t.vma("P/M")
    assert (m.start, m.end, m.pgoff) == (FAR, FAR + 2 * PS, 0x11)
    assert [(p.name, p.addr, p.index, p.mapping, p.in_chain) for p in m.pages] == [
        ("pg1", FAR, 0x11, "AV0", True), ("pg2", FAR + PS, 0x12, "AV0", True)]
    assert m.anon_vma == "AV0" and m.chain == ("AV0",)
    assert spans(t) == [(0x10000, 0x11000), (0x13000, 0x14000), (FAR, FAR + 2 * PS)]
    assert [v.name for v in t.process("P").vmas] == ["A", "A.1", "M"]
    assert problems(t) == []


@pytest.mark.parametrize("policy", EVERY)
def test_unfaulted_move_resets_pgoff(policy: str) -> None:
    """copy_vma(): an unfaulted anonymous VMA gets the pgoff of its new address; a file VMA
    keeps its file offset."""
    vmas = ("      - {name: A, start: 0x10000, pages: 2}\n"
            "      - {name: F, start: 0x20000, pages: 2, file: lib}\n")
    t = run(move("P/A", FAR) + move("P/F", FAR + 0x100000), policy, vmas)
    assert t.vma("P/A").pgoff == FAR >> 12
    assert t.vma("P/F").pgoff == 0x20


@pytest.mark.parametrize("policy", EVERY)
def test_fork_child_chain_is_cloned_on_move(policy: str) -> None:
    """A fork child's VMA moved whole: the copy gets a clone of the chain (anon_vma preset by
    vm_area_dup(): no new anon_vma, no reuse; reversed in 2026, VMA_OP_REMAP), the old VMA's
    chain is dropped, the pages stay reachable."""
    vmas = "      - {name: A, start: 0x10000, pages: 2, faulted: true, anon_vma: AV0}\n"
    steps = ("  - {fork: P, child: K}\n  - {write: K/A, pages: [1]}\n  - {snapshot: before}\n"
             + move("K/A", FAR))
    rep = replay(loads("description: x\nprocesses:\n  - name: P\n    vmas:\n" + vmas
                       + "steps:\n" + steps, "m.yaml"), policy)
    was, now = rep.snapshots[0].vma("K/A"), rep.final.vma("K/A")
    assert (now.start, now.end) == (FAR, FAR + 2 * PS)
    assert now.anon_vma == was.anon_vma
    want = tuple(reversed(was.chain)) if policy == "clone-rework-2026" else was.chain
    assert now.chain == want
    assert [(p.name, p.mapping, p.in_chain) for p in now.pages] == [
        (p.name, p.mapping, True) for p in was.pages]
    assert len({a.name for a in rep.final.anon_vmas}) == len(rep.snapshots[0].anon_vmas)
    assert problems(rep.final) == []


def test_clone_rework_clones_with_remap() -> None:
    """2026: copy_vma()'s anon_vma_clone(new, vma, VMA_OP_REMAP) passes check_anon_vma_clone()
    (dst->anon_vma preset by vm_area_dup()) and reverses the chain, as every 2026 clone does.
    Moving the first page of a grandchild's 2-page VMA clones it twice: the copy (REMAP) and the
    upper piece __split_vma() makes for the unmap (SPLIT): both get the reversed chain."""
    vmas = "      - {name: A, start: 0x10000, pages: 2, faulted: true, anon_vma: AV0}\n"
    steps = ("  - {fork: P, child: K}\n  - {fork: K, child: G}\n  - {snapshot: before}\n"
             f"  - {{mremap: G, start: 0x10000, pages: 1, flags: [maymove, fixed], to: {FAR:#x}, "
             "name: M}\n")
    rep = replay(loads("description: x\nprocesses:\n  - name: P\n    vmas:\n" + vmas
                       + "steps:\n" + steps, "m.yaml"), "clone-rework-2026")
    was, t = rep.snapshots[0].vma("G/A"), rep.final
    a, m = t.vma("G/A"), t.vma("G/M")
    assert len(was.chain) == 3 and len(set(was.chain)) == 3
    assert m.chain == a.chain == tuple(reversed(was.chain))
    assert m.anon_vma == a.anon_vma == was.anon_vma
    assert not any(f.kind == "VM_WARN_ON_ONCE" for f in t.findings)


# -- in place ---------------------------------------------------------------------------------

@pytest.mark.parametrize("policy", EVERY)
def test_grow_in_place_and_shrink(policy: str) -> None:
    """do_mremap(): growing into free space keeps the VMA (vma_merge_extend); shrinking unmaps
    the tail and its pages."""
    vmas = "      - {name: A, start: 0x10000, pages: 2, faulted: true}\n"
    t = run("  - {mremap: P/A, new_pages: 5}\n", policy, vmas)
    assert spans(t) == [(0x10000, 0x15000)] and len(t.vma("P/A").pages) == 2
    t = run("  - {mremap: P/A, new_pages: 1}\n", policy, vmas)
    assert spans(t) == [(0x10000, 0x11000)] and len(t.vma("P/A").pages) == 1
    assert problems(t) == []


@pytest.mark.parametrize("policy", EVERY)
def test_grow_in_place_merges_with_next(policy: str) -> None:
    """Growing up to a compatible next VMA (its pgoff is its address: linear with A's) swallows
    it (vma_merge_new_range() with prev = the VMA itself) when the rule allows: an unfaulted
    next takes faulted A's anon_vma under the 2025 rule (case 1), never under the old one (its
    empty chain is not singular); a next faulted into its own anon_vma never merges."""
    vmas = ("      - {name: A, start: 0x10000, pages: 2, faulted: true}\n"
            "      - {name: B, start: 0x14000, pages: 2}\n")
    t = run("  - {mremap: P/A, new_pages: 4}\n", policy, vmas)
    if policy in NEW_RULE or policy == "mirror-parent":
        assert spans(t) == [(0x10000, 0x16000)]
        assert any(f.kind == "MERGED" and "B merged into A" in f.detail for f in t.findings)
    else:
        assert spans(t) == [(0x10000, 0x14000), (0x14000, 0x16000)]
    t = run("  - {mremap: P/A, new_pages: 4}\n", policy, vmas.replace("2}", "2, faulted: true}"))
    assert spans(t) == [(0x10000, 0x14000), (0x14000, 0x16000)]
    assert problems(t) == []


@pytest.mark.parametrize("policy", NEW_RULE)
def test_grow_in_place_of_a_fork_child_still_merges_next(policy: str) -> None:
    """vma_merge_extend() sets vmg->middle = NULL: case 1 sees neither a source nor a
    copied_from, so even a fork child's VMA absorbs the unfaulted VMA it grows into."""
    vmas = ("      - {name: A, start: 0x10000, pages: 2, faulted: true}\n"
            "      - {name: B, start: 0x14000, pages: 2}\n")
    t = run("  - {fork: P, child: K}\n  - {mremap: K/A, new_pages: 4}\n", policy, vmas)
    assert spans(t, "K") == [(0x10000, 0x16000)]
    assert problems(t) == []


def test_grow_needs_maymove_when_blocked() -> None:
    vmas = ("      - {name: A, start: 0x10000, pages: 2}\n"
            "      - {name: B, start: 0x12000, pages: 2, prot: r}\n")
    with pytest.raises(ReplayError, match="ENOMEM"):
        run("  - {mremap: P/A, new_pages: 4}\n", "split-counters", vmas)
    with pytest.raises(ReplayError, match="get_unmapped_area"):
        run("  - {mremap: P/A, new_pages: 4, flags: [maymove]}\n", "split-counters", vmas)
    t = run(f"  - {{mremap: P/A, new_pages: 4, flags: [maymove], to: {FAR:#x}}}\n",
            "split-counters", vmas)
    assert spans(t) == [(0x12000, 0x14000), (FAR, FAR + 4 * PS)]
    assert t.process("P").vmas[1].name == "A"


# -- refusals ---------------------------------------------------------------------------------

@pytest.mark.parametrize("policy", ["degree", "always-new", "v2"])
def test_dontunmap_does_not_exist_before_v5_7(policy: str) -> None:
    vmas = "      - {name: A, start: 0x10000, pages: 2}\n"
    with pytest.raises(ReplayError, match="EINVAL"):
        run(move("P/A", FAR, flags=DONTUNMAP), policy, vmas)


def test_dontunmap_of_a_file_vma_needs_v5_13() -> None:
    vmas = "      - {name: F, start: 0x10000, pages: 2, file: lib}\n"
    for policy in ("v5.10", "v5.10-stable"):
        with pytest.raises(ReplayError, match="EINVAL"):
            run(move("P/F", FAR, flags=DONTUNMAP), policy, vmas)
    t = run(move("P/F", FAR, flags=DONTUNMAP), "split-counters", vmas)
    assert spans(t) == [(0x10000, 0x12000), (FAR, FAR + 2 * PS)]


@pytest.mark.parametrize("steps,match", [
    ("  - {mremap: P, start: 0x30000, pages: 1, flags: [maymove, fixed], to: 0x50000}\n", "EFAULT"),
    ("  - {mremap: P/A, offset: 1, pages: 2, flags: [maymove, fixed], to: 0x50000}\n", "not inside"),
    ("  - {mremap: P/A, flags: [maymove, fixed], to: 0x11000}\n", "overlap"),
    ("  - {mremap: P/A, flags: [maymove, dontunmap], to: 0x12000}\n", "get_unmapped_area"),
])
def test_refused(steps: str, match: str) -> None:
    vmas = ("      - {name: A, start: 0x10000, pages: 2}\n"
            "      - {name: B, start: 0x12000, pages: 1, prot: r}\n")
    with pytest.raises(ReplayError, match=match):
        run(steps, "split-counters", vmas)


@pytest.mark.parametrize("policy", ["split-counters", "clone-rework-2026", "degree", "v5.10",
                                    "v5.10-stable", "v6.1", "v6.12"])
def test_a_destination_is_checked_before_the_old_range(policy: str) -> None:
    """A destination overlapping the old range (or past TASK_SIZE) is -EINVAL before the old
    range's end is checked, in every era: mremap_to() checks it before vma_to_resize()
    (mm/mremap.c@v6.1.176, v6.12.117), check_mremap_params() before check_prep_vma() (7.2's
    tree, 6.18 live: the model said EFAULT, found by anondiff live).  With no VMA at the old
    address at all, v5.16 .. v6.15 say -EFAULT first: sys_mremap() looks the VMA up before
    mremap_to() (commit 550a7d60bd5e ("mm, hugepages: add mremap() support for hugepage
    backed vma")); before, vma_to_resize() looked, and from the vma_remap_struct code
    do_mremap() looks after check_mremap_params()."""
    vmas = "      - {name: A, start: 0x10000, pages: 4}\n"
    crossing = "  - {mremap: P, start: 0x13000, pages: 2, flags: [maymove, fixed], to: 0x14000}\n"
    with pytest.raises(ReplayError, match="overlap.*EINVAL"):
        run(crossing, policy, vmas)
    nothing = "  - {mremap: P, start: 0x30000, pages: 2, flags: [maymove, fixed], to: 0x31000}\n"
    errno = "EFAULT" if policy in ("v6.1", "v6.12") else "EINVAL"
    with pytest.raises(ReplayError, match=errno):
        run(nothing, policy, vmas)


@pytest.mark.parametrize("policy", EVERY)
def test_shrink_or_same_size_in_place_may_cross_vmas(policy: str) -> None:
    """do_mremap() checks that the old range lies in one VMA only for a growth or a move
    (6.18 check_prep_vma(): "Below only meaningful if we expand or move a VMA", "We permit
    crossing of boundaries for the range being unmapped due to a shrink"; 6.1 and 6.12 shrink
    before vma_to_resize()): a shrink unmaps [addr + new_len, addr + old_len) whatever it
    crosses, a same-size call does nothing, and MREMAP_FIXED with a shrink checks only
    new_len.  The model returned EFAULT for all three (found by anondiff live on 6.18)."""
    vmas = ("      - {name: A, start: 0x10000, pages: 2}\n"
            "      - {name: B, start: 0x12000, pages: 2, prot: r}\n")
    shrink = "  - {mremap: P, start: 0x10000, pages: 4, new_pages: 1}\n"
    assert spans(run(shrink, policy, vmas)) == [(0x10000, 0x11000)]
    same = "  - {mremap: P, start: 0x11000, pages: 3, flags: [maymove]}\n"
    assert spans(run(same, policy, vmas)) == [(0x10000, 0x12000), (0x12000, 0x14000)]
    fixed = ("  - {mremap: P, start: 0x10000, pages: 3, new_pages: 2, flags: [maymove, fixed], "
             "to: 0x40000}\n")
    t = run(fixed, policy, vmas)
    assert [(v.name, v.start, v.end) for v in t.process("P").vmas] == [
        ("B", 0x13000, 0x14000), ("A", 0x40000, 0x42000)]
    with pytest.raises(ReplayError, match="EFAULT"):     # a growth may not cross
        run("  - {mremap: P, start: 0x11000, pages: 2, new_pages: 3, flags: [maymove], "
            "to: 0x40000}\n", policy, vmas)


@pytest.mark.parametrize("policy", EVERY)
def test_fixed_move_of_several_vmas_from_6_17(policy: str) -> None:
    """6.17+ do_mremap(): MREMAP_FIXED of the same size is remap_move() (mm/mremap.c of the
    7.2 tree, which 6.18 runs): every VMA of the old range moves, each one's part, with the
    gaps between them kept; a gap after the last one is allowed, one at the start is EFAULT.
    Before (v6.1, v6.12 and the older eras) the range must lie in one VMA: EFAULT.  The model
    returned EFAULT for split-counters (found by anondiff live on 6.18)."""
    vmas = ("      - {name: A, start: 0x10000, pages: 2, faulted: true}\n"
            "      - {name: B, start: 0x12000, pages: 2, prot: r}\n"
            "      - {name: C, start: 0x15000, pages: 2, faulted: true}\n")
    step = "  - {mremap: P, start: 0x11000, pages: 7, flags: [maymove, fixed], to: 0x40000}\n"
    if policy not in NEW_RULE and policy != "mirror-parent":
        with pytest.raises(ReplayError, match="EFAULT"):
            run(step, policy, vmas)
        return
    t = run(step, policy, vmas)
    assert [(v.name, v.start, v.end) for v in t.process("P").vmas] == [
        ("A", 0x10000, 0x11000), ("A.1", 0x40000, 0x41000), ("B", 0x41000, 0x43000),
        ("C", 0x44000, 0x46000)]
    assert t.vma("P/A.1").anon_vma == t.vma("P/A").anon_vma is not None
    assert problems(t) == []
    with pytest.raises(ReplayError, match="EFAULT"):       # a gap at the start
        run("  - {mremap: P, start: 0x14000, pages: 2, flags: [maymove, fixed], "
            "to: 0x40000}\n", policy, vmas)


SEVERAL = ("      - {name: A, start: 0x10000, pages: 2, faulted: true}\n"
           "      - {name: B, start: 0x12000, pages: 2, prot: r}\n"
           "      - {name: D1, start: 0x3f000, pages: 2, file: lib}\n"
           "      - {name: D2, start: 0x43000, pages: 2, file: lib}\n")


@pytest.mark.parametrize("policy", NEW_RULE)
def test_fixed_move_of_several_vmas_unmaps_each_destination(policy: str) -> None:
    """6.17+ remap_move(): each VMA's part goes through mremap_to(), which with MREMAP_FIXED
    unmaps [new_addr, new_addr + new_len) of that part first (``if (vrm->flags & MREMAP_FIXED)
    { err = do_munmap(mm, vrm->new_addr, vrm->new_len, ...)``; commit d23cb648e365 ("mm/mremap:
    permit mremap() move of multiple VMAs")): D1 and D2 lose exactly the pages A' and B' land
    on, D1 for the first part and D2 for the second.  The step's name goes to the first part's
    VMA (remap_move() returns the first new address).

        0x3f 0x40 0x41 0x42 0x43 0x44      before: D1 D1 .  .  D2 D2
                                            after:  D1 A' A' B' B' D2"""
    step = "  - {mremap: P, start: 0x10000, pages: 4, flags: [maymove, fixed], to: 0x40000%s}\n"
    t = run(step % "", policy, SEVERAL)
    assert [(v.name, v.start, v.end, len(v.pages)) for v in t.process("P").vmas] == [
        ("D1", 0x3f000, 0x40000, 0), ("A", 0x40000, 0x42000, 2), ("B", 0x42000, 0x44000, 0),
        ("D2", 0x44000, 0x45000, 0)]
    assert problems(t) == []
    t = run(step % ", name: X", policy, SEVERAL)
    assert [v.name for v in t.process("P").vmas] == ["D1", "X", "B", "D2"]


@pytest.mark.parametrize("policy", NEW_RULE)
def test_fixed_dontunmap_move_of_several_vmas_keeps_each_source(policy: str) -> None:
    """6.17+ remap_move() with MREMAP_DONTUNMAP: mremap_to() -> move_vma() of each part keeps
    its source mapped and empty (dontunmap_complete(): a VMA moved whole has its anon_vma
    chain unlinked, commit e346b3813067 ("mm/mremap: add MREMAP_DONTUNMAP to mremap()")), for
    every VMA of the range, not only the first: A and B stay where they were, without pages,
    A without an anon_vma; A' keeps the anon_vma and the pages."""
    step = ("  - {mremap: P, start: 0x10000, pages: 4, flags: [maymove, fixed, dontunmap], "
            "to: 0x40000}\n")
    t = run(step, policy, SEVERAL)
    assert [(v.name, v.start, v.end, v.anon_vma is not None, len(v.pages))
            for v in t.process("P").vmas] == [
        ("A", 0x10000, 0x12000, False, 0), ("B", 0x12000, 0x14000, False, 0),
        ("D1", 0x3f000, 0x40000, False, 0), ("A.1", 0x40000, 0x42000, True, 2),
        ("B.1", 0x42000, 0x44000, False, 0), ("D2", 0x44000, 0x45000, False, 0)]
    assert problems(t) == []


def test_fixed_replaces_what_is_at_the_destination() -> None:
    vmas = ("      - {name: A, start: 0x10000, pages: 2, faulted: true}\n"
            "      - {name: B, start: 0x20000, pages: 4, prot: r, faulted: true}\n")
    t = run(move("P/A", 0x21000), "split-counters", vmas)
    assert [(v.name, v.start, v.end) for v in t.process("P").vmas] == [
        ("B", 0x20000, 0x21000), ("A", 0x21000, 0x23000), ("B.1", 0x23000, 0x24000)]
    assert problems(t) == []


# -- the scenario format ----------------------------------------------------------------------

LOADER_HEAD = """description: x
processes:
  - name: P
    vmas:
      - {name: A, start: 0x10000, pages: 2}
steps:
"""


def test_mremap_step_loads() -> None:
    from anondiff.scenario import Mremap, Target
    sc = loads(LOADER_HEAD + "  - {mremap: P/A, offset: 1, pages: 1, new_pages: 3, "
               "flags: [maymove, fixed], to: 0x40000, name: B, names: [A2]}\n"
               "  - {mremap: P, start: 0x10000, pages: 1}\n", "l.yaml")
    assert sc.steps == (
        Mremap(Target("P", "A", 1, 2), 3, frozenset({"maymove", "fixed"}), 0x40000, "B",
               ("A2",), line=7),
        Mremap(Target("P", None, 0x10000, 0x11000), line=8),
    )


@pytest.mark.parametrize("step,message", [
    ("{mremap: P/A, flags: [fixed], to: 0x40000}", "'fixed' needs 'maymove'"),
    ("{mremap: P/A, flags: [maymove, dontunmap]}", "'dontunmap' needs 'to'"),
    ("{mremap: P/A, flags: [maymove, fixed]}", "'fixed' needs 'to'"),
    ("{mremap: P/A, to: 0x40000}", "only used with flags: [maymove"),
    ("{mremap: P/A, flags: [maymove, maymove]}", "listed twice"),
    ("{mremap: P/A, flags: [grow]}", "'grow' is not known (expected one of: maymove, fixed, dontunmap)"),
    ("{mremap: P/A, new_pages: 0}", "must be >= 1"),
    ("{mremap: P/A, flags: [maymove], to: 0x40001}", "not page aligned"),
    ("{mremap: P/A, pages: 2, new_pages: 3, flags: [maymove, dontunmap], to: 0x40000}",
     "'dontunmap' keeps the size"),
    ("{mremap: P/A, flags: [maymove], to: 0x40000, name: B, names: [B]}", "also in 'names'"),
    ("{mremap: P/A, start: 0x10000}", "'start' is for a process target"),
    ("{mremap: Q/A}", "'Q' is not a process"),
    ("{mremap: P/A, size: 3}", "unknown key 'size'"),
])
def test_mremap_step_errors(step: str, message: str) -> None:
    from anondiff.errors import ScenarioError
    with pytest.raises(ScenarioError) as e:
        loads(LOADER_HEAD + "  - " + step + "\n", "l.yaml")
    assert str(e.value).startswith("l.yaml:7:"), str(e.value)
    assert message in str(e.value)


def test_cli_refused_mremap_is_one_line_exit_2(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from anondiff.cli import main
    p = tmp_path / "m.yaml"
    p.write_text(LOADER_HEAD + "  - {snapshot: s}\n  - {mremap: P/A, flags: [maymove, fixed, dontunmap], "
                 "to: 0x40000}\n")
    r = CliRunner().invoke(main, ["run", str(p), "-p", "degree", "-o", str(tmp_path / "out")])
    assert r.exit_code == 2
    assert f"{p}:8: steps[1]: mremap: MREMAP_DONTUNMAP does not exist before v5.7" in r.output
    assert "EINVAL" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "out").exists()
    r = CliRunner().invoke(main, ["run", str(p), "-p", "split-counters", "--format", "list"])
    assert r.exit_code == 0, r.output


# -- tools/testing/vma/vma.c (Debian linux-source 6.12), through the mremap syscall ----------

@pytest.mark.parametrize("policy", EVERY)
def test_vma_c_merge_extend(policy: str) -> None:
    """vma.c test_merge_extend: a one-page VMA extended by two pages into the gap before the
    next VMA (unfaulted, pgoff linear) merges with it: one VMA, pgoff unchanged.  Here through
    mremap() growing in place (vma_merge_extend()), shifted up by 0x100000."""
    b = 0x100000
    vmas = (f"      - {{name: A, start: {b:#x}, pages: 1}}\n"
            f"      - {{name: B, start: {b + 0x3000:#x}, pages: 1}}\n")
    t = run("  - {mremap: P/A, new_pages: 3}\n", policy, vmas)
    assert [(v.name, v.start, v.end, v.pgoff) for v in t.process("P").vmas] == [
        ("A", b, b + 0x4000, b >> 12)]


@pytest.mark.parametrize("policy", EVERY)
def test_vma_c_copy_vma(policy: str) -> None:
    """vma.c test_copy_vma: an unfaulted VMA moved backwards gets a new VMA with the pgoff of
    its new address (no merge); moved next to a VMA whose pgoff is then linear, it merges into
    that VMA.  Through mremap(MREMAP_MAYMOVE | MREMAP_FIXED), shifted up by 0x100000."""
    b = 0x100000
    t = run(move("P/A", b), policy, f"      - {{name: A, start: {b + 0x3000:#x}, pages: 2}}\n")
    assert [(v.name, v.start, v.end, v.pgoff) for v in t.process("P").vmas] == [
        ("A", b, b + 0x2000, b >> 12)]
    t = run(move("P/A", b + 0x4000), policy,
            f"      - {{name: A, start: {b:#x}, pages: 2}}\n"
            f"      - {{name: N, start: {b + 0x6000:#x}, pages: 2}}\n")
    assert [(v.name, v.start, v.end, v.pgoff) for v in t.process("P").vmas] == [
        ("N", b + 0x4000, b + 0x8000, (b + 0x4000) >> 12)]
