"""vma_merge(): what mprotect, madvise and mmap do before they split or insert.

Follows the outcome of v4.19's case-numbered vma_merge()/__vma_adjust() and of the 6.x
vma_merge_existing_range()/vma_merge_new_range(), which agree on which VMA survives:

* merge with prev only: prev expands, middle shrinks or goes;
* merge with next only: next expands downward, middle shrinks or goes (v4.19 "case 8" swaps
  and removes the middle too);
* both (prev and next anon_vmas compatible: equal or one NULL): prev expands over both.

A VMA that expands with no anon_vma while the one giving up the range has one imports it:
``dst->anon_vma = src->anon_vma`` first, then anon_vma_clone() (the importer of __vma_adjust,
dup_anon_vma() in 6.x, VMA_OP_MERGE_UNFAULTED in 2026).  A removed VMA's chain is dropped by
unlink_anon_vmas() (anon_vma_merge() up to 6.x, after its VM_BUG_ON_VMA on equal anon_vmas).
Whether the anon_vmas allow a merge is the policy's is_mergeable_anon_vma().

The VMA whose range changes is taken out of its anon_vmas' interval trees and put back
(vma_prepare()/vma_complete(), __vma_adjust() before): the expanded one first, then the one whose
start moves; their chains get a new place among equal keys.
"""
from __future__ import annotations

from .objects import Mm, Vma
from .rmap import avname, ref, rekey, unlink_anon_vmas
from .state import Kernel


def _same_vma_props(a: Vma, prot: frozenset[str], flags: frozenset[str], file: str | None) -> bool:
    """is_mergeable_vma(): flags (VM_READ|WRITE|EXEC included), file; no mempolicy, uffd or
    anon_vma_name in the model."""
    return a.prot == prot and a.flags == flags and a.file == file


def dup_anon_vma(k: Kernel, dst: Vma, src: Vma) -> None:
    from ..policies.base import VmaOp
    if src.anon_vma is not None and dst.anon_vma is None:
        dst.anon_vma = src.anon_vma
        k.policy.anon_vma_clone(k, dst, src, VmaOp.MERGE_UNFAULTED)


def remove_merged(k: Kernel, kept: Vma, gone: Vma) -> None:
    if gone.anon_vma is not None and kept.anon_vma is not gone.anon_vma:
        k.event("VM_BUG_ON", ref(kept), f"anon_vma_merge: {avname(kept.anon_vma)} != "
                f"{avname(gone.anon_vma)} of {gone.name}")
    unlink_anon_vmas(k, gone)
    gone.mm.remove(gone)


def merge_existing(k: Kernel, middle: Vma, start: int, end: int,
                   prot: frozenset[str], flags: frozenset[str], with_next: bool = True) -> Vma | None:
    """Try to merge [start, end) of ``middle``, about to get ``prot``/``flags``, with its
    neighbours (``with_next`` False: with the previous one only).  Returns the VMA now holding
    the range, or None when nothing merged."""
    mm = middle.mm
    policy = k.policy
    pgoff = middle.pgoff + (start - middle.start)
    left_side, right_side = start == middle.start, end == middle.end
    prev = mm.prev(middle) if left_side else None
    next = mm.next(middle) if right_side and with_next else None
    merge_left = (prev is not None and prev.end == start
                  and _same_vma_props(prev, prot, flags, middle.file)
                  and prev.pgoff + (prev.end - prev.start) == pgoff
                  and policy.is_mergeable_anon_vma(middle, prev))
    merge_right = (next is not None and next.start == end
                   and _same_vma_props(next, prot, flags, middle.file)
                   and next.pgoff == pgoff + (end - start)
                   and policy.is_mergeable_anon_vma(middle, next))
    if merge_left and merge_right:
        assert prev is not None and next is not None
        if (prev.anon_vma is None or next.anon_vma is None or prev.anon_vma is next.anon_vma):
            exporter = middle
            if policy.merge_both_exports_next and next.anon_vma is not None or middle.anon_vma is None:
                exporter = next
            dup_anon_vma(k, prev, exporter)
            prev.end = next.end
            rekey(k, prev)
            remove_merged(k, prev, middle)
            remove_merged(k, prev, next)
            k.event("MERGED", ref(prev), f"{middle.name} and {next.name} merged into {prev.name}")
            return prev
        merge_right = False
    if merge_left:
        assert prev is not None
        dup_anon_vma(k, prev, middle)
        prev.end = end
        rekey(k, prev)
        if right_side:
            remove_merged(k, prev, middle)
        else:
            _move_start(mm, middle, end)
            rekey(k, middle)
        k.event("MERGED", ref(prev), f"{_range(start, end)} of {middle.name} merged into {prev.name}")
        return prev
    if merge_right:
        assert next is not None
        dup_anon_vma(k, next, middle)
        if left_side:
            remove_merged(k, next, middle)
        else:
            middle.end = start
            rekey(k, middle)
        _move_start(mm, next, start)
        rekey(k, next)
        k.event("MERGED", ref(next), f"{_range(start, end)} of {middle.name} merged into {next.name}")
        return next
    return None


def merge_new(k: Kernel, mm: Mm, new: Vma) -> Vma | None:
    """vma_merge_new_range() for an mmap: the new range has no anon_vma yet."""
    policy = k.policy
    i = _index_for(mm, new.start)
    prev = mm.vmas[i - 1] if i > 0 else None
    next = mm.vmas[i] if i < len(mm.vmas) else None
    merge_left = (prev is not None and prev.end == new.start
                  and _same_vma_props(prev, new.prot, new.flags, new.file)
                  and prev.pgoff + (prev.end - prev.start) == new.pgoff
                  and policy.is_mergeable_anon_vma(new, prev))
    merge_right = (next is not None and next.start == new.end
                   and _same_vma_props(next, new.prot, new.flags, new.file)
                   and next.pgoff == new.pgoff + (new.end - new.start)
                   and policy.is_mergeable_anon_vma(new, next))
    if merge_left and merge_right:
        assert prev is not None and next is not None
        if prev.anon_vma is None or next.anon_vma is None or prev.anon_vma is next.anon_vma:
            dup_anon_vma(k, prev, next)
            prev.end = next.end
            rekey(k, prev)
            remove_merged(k, prev, next)
            return prev
        merge_right = False
    if merge_left:
        assert prev is not None
        prev.end = new.end
        rekey(k, prev)
        return prev
    if merge_right:
        assert next is not None
        _move_start(mm, next, new.start)
        rekey(k, next)
        return next
    return None


def _range(start: int, end: int) -> str:
    from ..scenario import PAGE_SHIFT
    return f"[{start << PAGE_SHIFT:#x}, {end << PAGE_SHIFT:#x})"


def _index_for(mm: Mm, start: int) -> int:
    from bisect import bisect_left
    return bisect_left(mm.starts, start)


def _move_start(mm: Mm, vma: Vma, start: int) -> None:
    i = mm.index(vma)
    vma.pgoff += start - vma.start
    vma.start = start
    mm.starts[i] = start
