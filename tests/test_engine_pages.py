"""The page-table side of fork and exit: copy_page_range() and exit_mmap()'s zap of every pte,
on the model's objects directly (each has two ways through: few pages or many)."""
from __future__ import annotations

import pytest

from anondiff.kernel.fork import copy_page_range
from anondiff.kernel.mm import exit_mmap, zap_pages
from anondiff.kernel.objects import AnonVma, AnonVmaChain, Mm, Page, Vma
from anondiff.kernel.state import Kernel
from anondiff.policies import get

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
