"""Flags that merges ignore or keep, and vm_ops->close, per era.

* VM_SOFTDIRTY (``softdirty``): is_mergeable_vma() and anon_vma_compatible() ignore it in every
  era modelled (mm/mmap.c@v6.1.176, mm/vma.c@v6.12.117: ``& ~VM_SOFTDIRTY``).  Before the 2026
  tree the merged VMA takes the flags the operation sets (mprotect_fixup()'s
  vm_flags_reset(vma, newflags)), so the expanded VMA's own soft-dirty bit can be lost; in
  the 7.2 tree VM_SOFTDIRTY and VM_MAYBE_GUARD (``guard``) are VMA_STICKY_FLAGS
  (include/linux/mm.h@7.2.13): ignored by merges and set on the merged VMA if any VMA merged
  had them (vma_merge_existing_range(), vma_expand(), mm/vma.c@7.2.13).
* vm_ops->close (``close``): before v6.12 is_mergeable_vma() refuses a neighbour that has one
  (mm/mmap.c@v6.1.176); from v6.12 only a merge that would *remove* such a VMA is refused or
  reduced (can_merge_remove_vma(), mm/vma.c@v6.12.117 and @7.2.13).

The kernel's own tests translated here are in tools/testing/vma (tests/merge.c in the 7.2.13
tree, vma.c in 6.12.117), named in each docstring.  The harness calls vma_merge_existing_range()
with the flags the VMA already has; a scenario needs a change to make mprotect try a merge, so
the VMA being "modified" starts read-only and is made read-write like its neighbours.
"""
from __future__ import annotations

import itertools

import pytest

from anondiff.engine import replay
from anondiff.scenario import loads
from anondiff.topology import Topology

OLD_CLOSE = ("always-new", "degree", "v5.10", "v6.1")                     # neighbour rule
NEW_CLOSE = ("v6.12", "split-counters", "clone-rework-2026", "mirror-parent")  # removal rule
EVERY = OLD_CLOSE + NEW_CLOSE
NOT_STICKY = tuple(p for p in EVERY if p != "clone-rework-2026")
PS = 0x1000
INFORMATIONAL = {"NOTE", "MERGED", "MERGE_REFUSED"}


def run(vmas: list[str], steps: list[str], policy: str) -> Topology:
    text = ("description: merge flags\nprocesses:\n  - name: P\n    vmas:\n"
            + "".join(f"      - {{{v}}}\n" for v in vmas)
            + "steps:\n" + "".join(f"  - {{{s}}}\n" for s in steps))
    t = replay(loads(text, "f.yaml"), policy).final
    assert [f for f in t.findings if f.kind not in INFORMATIONAL] == []
    return t


def vma(name: str, start: int, end: int, prot: str = "rw", flags: tuple[str, ...] = (),
        extra: str = "") -> str:
    out = f"name: {name}, start: {start:#x}, end: {end:#x}, prot: {prot}"
    if flags:
        out += f", flags: [{', '.join(flags)}]"
    return out + extra


def spans(t: Topology) -> list[tuple[str, int, int]]:
    return [(v.name, v.start, v.end) for v in t.process("P").vmas]


def flags(t: Topology, name: str) -> set[str]:
    return set(t.vma(f"P/{name}").flags) - {"account"}


# -- soft-dirty and the guard marker -------------------------------------------------------------

@pytest.mark.parametrize("policy", EVERY)
@pytest.mark.parametrize("flag", ["softdirty", "guard"])
def test_differing_only_in_an_ignored_flag_merges(policy: str, flag: str) -> None:
    """A (rw, with the flag) and B (read-only, without): mprotect B rw merges B into A in every
    era, the flag being ignored by is_mergeable_vma().  What A keeps differs: the 2026 tree keeps
    the sticky flag; before, mprotect_fixup() gives the merged VMA B's new flags, without it."""
    t = run([vma("A", 0x10000, 0x12000, flags=(flag,)), vma("B", 0x12000, 0x13000, "r")],
            ["mprotect: P/B, prot: rw"], policy)
    assert spans(t) == [("A", 0x10000, 0x13000)]
    assert flags(t, "A") == ({flag} if policy == "clone-rework-2026" else set())


@pytest.mark.parametrize("policy", EVERY)
def test_the_flag_of_the_modified_vma_goes_with_it(policy: str) -> None:
    """The other way round: B has the flag and is the one changed.  Every era gives the merged
    VMA the flags mprotect sets, B's: soft-dirty survives."""
    t = run([vma("A", 0x10000, 0x12000), vma("B", 0x12000, 0x13000, "r", ("softdirty",))],
            ["mprotect: P/B, prot: rw"], policy)
    assert spans(t) == [("A", 0x10000, 0x13000)]
    assert flags(t, "A") == {"softdirty"}


@pytest.mark.parametrize("policy", EVERY)
def test_anon_vma_compatible_ignores_softdirty(policy: str) -> None:
    """find_mergeable_anon_vma() shares A's anon_vma with B, which differs only in
    VM_SOFTDIRTY (anon_vma_compatible() masks it: mm/vma.c@v6.12.117, VMA_IGNORE_MERGE_FLAGS in
    mm/vma.c@7.2.13); a VMA differing in VM_NORESERVE (a real flag) does not share it."""
    t = run([vma("A", 0x10000, 0x11000, extra=", faulted: true"),
             vma("B", 0x11000, 0x12000, flags=("softdirty",)),
             vma("C", 0x12000, 0x13000, flags=("noreserve",))],
            ["write: P/B", "write: P/C"], policy)
    assert t.vma("P/B").anon_vma == t.vma("P/A").anon_vma
    assert t.vma("P/C").anon_vma != t.vma("P/B").anon_vma


@pytest.mark.parametrize("prev_sticky,middle_sticky,next_sticky",
                         list(itertools.product((False, True), repeat=3)))
def test_merge_existing_sticky(prev_sticky: bool, middle_sticky: bool, next_sticky: bool) -> None:
    """tools/testing/vma/tests/merge.c@7.2.13 test_merge_existing() / __test_merge_existing():
    the merge right and merge left cases with a partial span, every permutation of sticky flags
    (VM_SOFTDIRTY and VM_MAYBE_GUARD): the VMA that expands has them if it or the modified VMA
    had them.  vm_ops->close on the VMAs that are not removed has no impact (also from the
    test)."""
    sticky = ("softdirty", "guard")
    def f(on: bool, close: bool = True) -> tuple[str, ...]:
        return (sticky if on else ()) + (("close",) if close else ())
    # merge right, partial span: V [0x2000, 0x6000) r, N [0x6000, 0x9000); [0x3000, 0x6000) rw
    t = run([vma("V", 0x2000, 0x6000, "r", f(middle_sticky)),
             vma("N", 0x6000, 0x9000, "rw", f(next_sticky))],
            ["mprotect: P/V, offset: 1, prot: rw"], "clone-rework-2026")
    assert spans(t) == [("V", 0x2000, 0x3000), ("N", 0x3000, 0x9000)]
    assert t.vma("P/N").pgoff == 3
    assert (set(sticky) <= flags(t, "N")) == (middle_sticky or next_sticky)
    assert not set(sticky) & flags(t, "N") or set(sticky) <= flags(t, "N")
    # merge left, partial span: P [0, 0x3000), V [0x3000, 0x7000) r; [0x3000, 0x6000) rw
    t = run([vma("Q", 0x10000, 0x13000, "rw", f(prev_sticky)),
             vma("V", 0x13000, 0x17000, "r", f(middle_sticky))],
            ["mprotect: P/V, pages: 3, prot: rw"], "clone-rework-2026")
    assert spans(t) == [("Q", 0x10000, 0x16000), ("V", 0x16000, 0x17000)]
    assert (set(sticky) <= flags(t, "Q")) == (prev_sticky or middle_sticky)


@pytest.mark.parametrize("policy", EVERY)
def test_mmap_next_to_a_softdirty_vma_stays_softdirty(policy: str) -> None:
    """__mmap_region() marks the new or expanded mapping soft-dirty in every era ("New (or
    expanded) vma always get soft dirty status"): mapping B next to a soft-dirty A expands A,
    which stays soft-dirty (the model sets the flag only where the scenario states it)."""
    t = run([vma("A", 0x10000, 0x12000, flags=("softdirty",))],
            ["mmap: P, name: B, start: 0x12000, pages: 1, prot: rw"], policy)
    assert spans(t) == [("A", 0x10000, 0x13000)]
    assert flags(t, "A") == {"softdirty"}


# -- vm_ops->close -------------------------------------------------------------------------------

CLOSE = ("close",)


@pytest.mark.parametrize("policy", EVERY)
def test_vma_merge_with_close_new_range(policy: str) -> None:
    """tools/testing/vma/tests/merge.c@7.2.13 test_vma_merge_with_close(), first case
    ("PPP**NNNN"): a new range between prev and a next with ->close expands prev only; next
    stays.  Before v6.12 the same comes out for another reason: next cannot merge at all."""
    t = run([vma("P0", 0x10000, 0x13000), vma("N", 0x15000, 0x19000, flags=CLOSE)],
            ["mmap: P, name: new, start: 0x13000, pages: 2, prot: rw"], policy)
    assert spans(t) == [("P0", 0x10000, 0x15000), ("N", 0x15000, 0x19000)]


@pytest.mark.parametrize("policy", EVERY)
def test_vma_merge_with_close_middle_into_prev(policy: str) -> None:
    """test_vma_merge_with_close(), "PPPVV" with V having ->close: from v6.12 V may not be
    removed, so nothing merges (VMA_MERGE_NOMERGE); before, only the neighbour's ->close was
    looked at (is_mergeable_vma(prev)) and V merges into P0."""
    t = run([vma("P0", 0x10000, 0x13000), vma("V", 0x13000, 0x15000, "r", CLOSE)],
            ["mprotect: P/V, prot: rw"], policy)
    if policy in NEW_CLOSE:
        assert spans(t) == [("P0", 0x10000, 0x13000), ("V", 0x13000, 0x15000)]
    else:
        assert spans(t) == [("P0", 0x10000, 0x15000)]


@pytest.mark.parametrize("policy", EVERY)
def test_vma_merge_with_close_middle_into_next(policy: str) -> None:
    """test_vma_merge_with_close(), "VVNNNN" mirrored: V with ->close would be removed by a merge
    into next: refused from v6.12; before, next has no ->close and takes V."""
    t = run([vma("V", 0x13000, 0x15000, "r", CLOSE), vma("N", 0x15000, 0x19000)],
            ["mprotect: P/V, prot: rw"], policy)
    if policy in NEW_CLOSE:
        assert spans(t) == [("V", 0x13000, 0x15000), ("N", 0x15000, 0x19000)]
    else:
        assert spans(t) == [("N", 0x13000, 0x19000)]


@pytest.mark.parametrize("policy", EVERY)
def test_vma_merge_with_close_middle_between(policy: str) -> None:
    """test_vma_merge_with_close(), "PPPVVNNNN" first variant: V has ->close: no merge at all
    from v6.12; before, all three merge into P0."""
    t = run([vma("P0", 0x10000, 0x13000), vma("V", 0x13000, 0x15000, "r", CLOSE),
             vma("N", 0x15000, 0x19000)], ["mprotect: P/V, prot: rw"], policy)
    if policy in NEW_CLOSE:
        assert len(spans(t)) == 3
    else:
        assert spans(t) == [("P0", 0x10000, 0x19000)]


@pytest.mark.parametrize("policy", EVERY)
def test_vma_merge_with_close_next_has_close(policy: str) -> None:
    """test_vma_merge_with_close(), "PPPVVNNNN" second variant: N has ->close: reduced to
    merging P0 and V from v6.12 ("PPPPPNNNN"); before, N refuses to merge and the result is the
    same."""
    t = run([vma("P0", 0x10000, 0x13000), vma("V", 0x13000, 0x15000, "r"),
             vma("N", 0x15000, 0x19000, flags=CLOSE)], ["mprotect: P/V, prot: rw"], policy)
    assert spans(t) == [("P0", 0x10000, 0x15000), ("N", 0x15000, 0x19000)]
    assert "close" in t.vma("P/N").flags and "close" not in t.vma("P/P0").flags


@pytest.mark.parametrize("policy", EVERY)
def test_vma_merge_new_with_close(policy: str) -> None:
    """tools/testing/vma/tests/merge.c@7.2.13 test_vma_merge_new_with_close(): a new range
    between A and B, both with ->close: from v6.12 A expands over it (it is not removed) and B
    stays; before v6.12 neither may merge and the new range is a VMA of its own."""
    t = run([vma("A", 0x10000, 0x12000, flags=CLOSE), vma("B", 0x15000, 0x17000, flags=CLOSE)],
            ["mmap: P, name: new, start: 0x12000, pages: 3, prot: rw"], policy)
    if policy in NEW_CLOSE:
        assert spans(t) == [("A", 0x10000, 0x15000), ("B", 0x15000, 0x17000)]
        assert "close" in t.vma("P/A").flags
    else:
        assert spans(t) == [("A", 0x10000, 0x12000), ("new", 0x12000, 0x15000),
                            ("B", 0x15000, 0x17000)]


@pytest.mark.parametrize("policy", EVERY)
def test_close_does_not_stop_anon_vma_sharing(policy: str) -> None:
    """anon_vma_compatible() does not look at vm_ops ("doesn't _have_ to mean that we can
    merge the two vma's", mm/vma.c@7.2.13): B, with ->close, takes A's anon_vma at its first
    write although the two never merge before v6.12."""
    t = run([vma("A", 0x10000, 0x11000, flags=CLOSE, extra=", faulted: true"),
             vma("B", 0x11000, 0x12000, flags=CLOSE)], ["write: P/B"], policy)
    assert t.vma("P/B").anon_vma == t.vma("P/A").anon_vma
