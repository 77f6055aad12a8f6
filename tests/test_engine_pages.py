"""The page-table side of fork and exit: copy_page_range() and exit_mmap()'s zap of every pte,
on the model's objects directly (each has two ways through: few pages or many)."""
from __future__ import annotations

import pytest

from anondiff.engine import _Replayer
from anondiff.kernel.fork import copy_page_range
from anondiff.kernel.mm import exit_mmap, zap_pages
from anondiff.kernel.objects import VM_ACCOUNT, AnonVma, AnonVmaChain, Mm, Page, Vma
from anondiff.kernel.state import Kernel
from anondiff.policies import get
from anondiff.scenario import loads

RW = frozenset({"read", "write"})


def _mm(name: str, vmas: list[tuple[int, int]], pages: list[int]) -> tuple[Mm, AnonVma]:
    mm, av = Mm(name), AnonVma()
    for start, end in vmas:
        v = Vma(mm, start, end, start, RW, frozenset(), None, f"v{start:x}")
        v.anon_vma = av
        v.avcs = [AnonVmaChain(v, av, 0)]
        mm.append(v)
    for p in pages:
        mm.ptes[p] = Page(av, p, f"p{p:x}")
    return mm, av


@pytest.mark.parametrize("size", [4, 0x1000])
def test_copy_page_range_maps_the_parents_pages_in_order(size: int) -> None:
    """The child maps the very pages the parent has in the VMA's range, in ascending order (as
    the parent's page table is walked), each one mapped once more; pages outside the range stay
    the parent's.  A VMA of a few pages is walked page by page, one of more pages than the
    parent has ptes through the ptes themselves."""
    inside = [0x12, 0x10, 0x13]
    parent, _ = _mm("P", [(0x10, 0x10 + size), (0x10 + size, 0x11 + size)],
                    inside + [0x10 + size, 0x5])
    child = Mm("C")
    copy_page_range(parent, child, parent.vmas[0])
    assert list(child.ptes) == sorted(inside)
    assert all(child.ptes[p] is parent.ptes[p] for p in inside)
    assert {p: pg.mapcount for p, pg in parent.ptes.items()} == \
        {0x12: 2, 0x10: 2, 0x13: 2, 0x10 + size: 1, 0x5: 1}


def test_copy_page_range_of_a_vma_without_anon_vma_maps_nothing() -> None:
    parent, _ = _mm("P", [(0x10, 0x14)], [0x10, 0x11])
    vma = parent.vmas[0]
    vma.anon_vma, vma.avcs = None, []
    child = Mm("C")
    copy_page_range(parent, child, vma)
    assert child.ptes == {}
    assert [pg.mapcount for pg in parent.ptes.values()] == [1, 1]


def test_exit_mmap_unmaps_every_page_once() -> None:
    """exit_mmap() zaps the whole address space: the mm keeps no pte and no VMA, every page it
    mapped is mapped once less (a page another mm maps stays mapped there), and the incremental
    checks are told the whole range changed; zap_pages() of a range drops only that range's."""
    k = Kernel(get("split-counters"))
    parent, _ = _mm("P", [(0x10, 0x14), (0x20, 0x21)], [0x10, 0x11, 0x20])
    child = Mm("C")
    for v in parent.vmas:
        copy_page_range(parent, child, v)
    child.vmas = [v.dup(child) for v in parent.vmas]
    child.starts = [v.start for v in child.vmas]
    child.dirty = set()
    shared = dict(parent.ptes)
    zap_pages(child, 0x11, 0x20)
    assert sorted(child.ptes) == [0x10, 0x20]
    assert [shared[p].mapcount for p in (0x10, 0x11, 0x20)] == [2, 1, 2]
    exit_mmap(k, child)
    assert child.ptes == {} and child.vmas == [] and child.starts == []
    assert [shared[p].mapcount for p in (0x10, 0x11, 0x20)] == [1, 1, 1]
    assert child.dirty_ranges == [(0x11, 0x20), (0, 1 << 52)]
    assert parent.ptes == shared


def _replayed(vmas: str, steps: str) -> Kernel:
    """The kernel model after a replay of P's ``vmas`` and ``steps`` (split-counters)."""
    sc = loads("description: t\nprocesses:\n  - name: P\n    vmas:\n" + vmas + "steps:\n" + steps,
               "t.yaml")
    r = _Replayer(sc, get("split-counters"), "incremental")
    r.steps()
    return r.k


def test_vmas_with_the_same_flags_hold_one_frozenset() -> None:
    """Each VMA of a layout gets a set of flags of its own (VM_ACCOUNT added to what the
    scenario says), and mprotect() making a VMA writable adds VM_ACCOUNT to its set: every VMA
    with the same flags, the fork's copies included, holds the same frozenset (a fork of many
    VMAs reads a few shared ones, not one scattered over the heap per VMA)."""
    k = _replayed("      - {name: a, start: 0x10000, pages: 1, faulted: true}\n"
                  "      - {name: b, start: 0x20000, pages: 1, faulted: true}\n"
                  "      - {name: c, start: 0x30000, pages: 1, prot: r}\n",
                  "  - {mprotect: P/c, prot: rw}\n"
                  "  - {fork: P, child: C}\n")
    vmas = [v for mm in k.mms.values() for v in mm.vmas]
    assert [v.name for v in vmas] == ["a", "b", "c"] * 2
    assert all(v.flags == {VM_ACCOUNT} for v in vmas)
    assert all(v.flags is vmas[0].flags for v in vmas)
    mm = Mm("M")
    made = [Vma(mm, 1, 2, 1, RW, frozenset(f), None, "x") for f in ({"shared"}, ["shared"])]
    assert made[0].flags == {"shared"} and made[0].flags is made[1].flags


def test_a_forks_child_keys_its_starts_and_ptes_by_the_parents_int_objects() -> None:
    """dup_mmap() gives the child's list of starts and its page table the parent's own int
    object for each VMA it copies (no new int per VMA: the compiled model keeps a VMA's start as
    a machine integer, and would make an int object of it for each); a VM_DONTCOPY VMA is
    skipped.  (Page numbers above 256: CPython keeps one object for each small int anyway.)"""
    k = _replayed("      - {name: d, start: 0x7f0000010000, pages: 1, flags: [dontcopy], "
                  "faulted: true}\n"
                  "      - {name: x, start: 0x7f0000011000, pages: 1, prot: r, faulted: true}\n"
                  "      - {name: y, start: 0x7f0000012000, pages: 1, faulted: true}\n",
                  "  - {fork: P, child: C}\n")
    parent, child = k.mms["P"], k.mms["C"]
    pages = [0x7f0000011, 0x7f0000012]
    assert [v.name for v in child.vmas] == ["x", "y"]
    assert child.starts == pages == [v.start for v in child.vmas]
    assert all(c is p for c, p in zip(child.starts, parent.starts[1:], strict=True))
    assert list(child.ptes) == pages
    assert all(c is p for c, p in zip(child.ptes, parent.starts[1:], strict=True))
    assert all(child.ptes[p] is parent.ptes[p] and parent.ptes[p].mapcount == 2 for p in pages)


def test_a_set_of_flags_no_vma_had_before_is_kept_as_given() -> None:
    """The first VMA given a set of flags no VMA had before holds that very set, and so does
    the next one given an equal set (the table of shared sets lives as long as the process and
    may hold every set the other tests used: the flag names here are new to it)."""
    import uuid

    from anondiff.kernel.objects import vm_flags
    mm = Mm("M")
    new = frozenset({f"test-{uuid.uuid4().hex}"})
    first = Vma(mm, 1, 2, 1, RW, new, None, "x")
    again = Vma(mm, 2, 3, 2, RW, frozenset(set(new)), None, "y")
    assert first.flags == new and first.flags is new and again.flags is new
    other = frozenset({f"test-{uuid.uuid4().hex}", "shared"})
    assert vm_flags(other) is other and vm_flags(frozenset(set(other))) is other
