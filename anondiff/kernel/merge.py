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

from typing import Final


from ..scenario import PAGE_SHIFT
from .objects import (VM_CLOSE, VM_SOFTDIRTY, Mm, ShmemFile, Vma, VmaOp, bisect_left,
                      flags_match)
from .rmap import avname, ref
from .state import Enomem, Kernel


#: VM_SPECIAL = VM_IO | VM_DONTEXPAND | VM_PFNMAP | VM_MIXEDMAP: vma_merge() (every era, v4.19
#: mm/mmap.c to the 2026 vma_merge_existing_range()/vma_merge_new_range()) refuses any merge of
#: a range with one of them.  The model states two: "io" (VM_IO) and "dontexpand".
VM_SPECIAL: Final = frozenset({"io", "dontexpand"})


#: ``Policy.close_forbids``: what a VMA with vm_ops->close (flag ``close``) stops.
#: Before v6.12 is_mergeable_vma() refuses to merge with such a neighbour at all
#: (mm/mmap.c@v6.1.176: ``if (vma->vm_ops && vma->vm_ops->close) return 0;``, the same in
#: v4.19); from v6.12 a merge may not *remove* one (can_merge_remove_vma(), mm/vma.c@v6.12.117
#: and mm/vma.c@7.2.13): it may still be expanded.
CLOSE_NEIGHBOUR: Final = "neighbour"
CLOSE_REMOVED: Final = "removed"


def _same_vma_props(a: Vma, prot: frozenset[str], flags: frozenset[str],
                    file: str | ShmemFile | None) -> bool:
    """is_mergeable_vma(): flags (VM_READ|WRITE|EXEC included; VM_SOFTDIRTY, VM_MAYBE_GUARD and
    vm_ops ignored), file; no mempolicy, uffd or anon_vma_name in the model."""
    return a.prot == prot and a.file == file and flags_match(a.flags, flags)


def close_allows_neighbour(k: Kernel, vma: Vma) -> bool:
    """Before v6.12: is_mergeable_vma() of a neighbour with vm_ops->close is false."""
    return k.policy.close_forbids != CLOSE_NEIGHBOUR or VM_CLOSE not in vma.flags


def may_remove(k: Kernel, vma: Vma) -> bool:
    """From v6.12: can_merge_remove_vma(): a merge may delete ``vma`` only without ->close."""
    return k.policy.close_forbids != CLOSE_REMOVED or VM_CLOSE not in vma.flags


def merged_flags(k: Kernel, target: Vma, flags: frozenset[str], merged: tuple[Vma, ...],
                 keep: frozenset[str] = frozenset()) -> frozenset[str]:
    """vm_flags of ``target`` once the merge is done: ``flags`` (what the range asked for; for
    mprotect/madvise vm_flags_reset() gives them to the merged VMA), ``target``'s own vm_ops
    (``close``) and its flags in ``keep``, and in the 2026 tree (``Policy.sticky_flags``,
    VMA_STICKY_FLAGS: VM_SOFTDIRTY and VM_MAYBE_GUARD) the sticky flags of every VMA merged
    (vma_merge_existing_range() / vma_expand(), mm/vma.c@7.2.13)."""
    out = (flags - {VM_CLOSE}) | (target.flags & ({VM_CLOSE} | keep))
    sticky = k.policy.sticky_flags
    if sticky:
        out |= target.flags & sticky
        for vma in merged:
            out |= vma.flags & sticky
    return frozenset(out)


def can_merge_after(k: Kernel, prev: Vma | None, src: Vma, start: int, pgoff: int,
                    prot: frozenset[str], flags: frozenset[str]) -> bool:
    """can_vma_merge_left()/can_vma_merge_after(): ``src``'s range, starting at ``start`` with
    ``pgoff``, may extend ``prev``."""
    return (prev is not None and prev.end == start
            and _same_vma_props(prev, prot, flags, src.file)
            and close_allows_neighbour(k, prev)
            and prev.pgoff + (prev.end - prev.start) == pgoff
            and k.policy.is_mergeable_anon_vma(src, prev))


def can_merge_before(k: Kernel, next: Vma | None, src: Vma, end: int, pgoff_end: int,
                     prot: frozenset[str], flags: frozenset[str]) -> bool:
    """can_vma_merge_right()/can_vma_merge_before(): ``src``'s range, ending at ``end`` with
    ``pgoff_end``, may be taken by ``next``."""
    return (next is not None and next.start == end
            and _same_vma_props(next, prot, flags, src.file)
            and close_allows_neighbour(k, next)
            and next.pgoff == pgoff_end
            and k.policy.is_mergeable_anon_vma(src, next))


def _both_compatible(prev: Vma, next: Vma) -> bool:
    """Merging prev and next too: their anon_vmas must be equal or one of them NULL."""
    return prev.anon_vma is None or next.anon_vma is None or prev.anon_vma is next.anon_vma


def dup_anon_vma(k: Kernel, dst: Vma, src: Vma) -> None:
    if src.anon_vma is not None and dst.anon_vma is None:
        dst.anon_vma = src.anon_vma
        k.policy.anon_vma_clone(k, dst, src, VmaOp.MERGE_UNFAULTED)


def dup_or_give_up(k: Kernel, dst: Vma, src: Vma, new_range: bool = False) -> bool:
    """dup_anon_vma() inside a merge, with what the era does when its anon_vma_clone() fails
    (the step's ``enomem``): nothing has changed yet in any era, so the merge is simply off.

    * v2.6.34 .. v6.11 (mm/mmap.c@v6.1.176 __vma_adjust(): ``if (error) return error;``, then
      vma_merge(): ``if (err) return NULL;``): vma_merge() returns NULL and the caller goes on
      as if nothing could merge (mprotect/madvise split instead);
    * v6.12+ (mm/vma.c@v6.12.117, mm/vma.c@7.2.13 vma_merge_existing_range(): ``vmg->state =
      VMA_MERGE_ERROR_NOMEM``; vma_modify(): ``if (vmg_nomem(vmg)) return ERR_PTR(-ENOMEM)``):
      mprotect/madvise fail with -ENOMEM (the policy's ``merge_nomem_fails``);
    * a new range (``new_range``: mmap, copy_vma()) gives up in every era: __mmap_region() and
      copy_vma() go on to allocate a VMA of their own (mm/mmap.c@v6.12.117, mm/vma.c@v6.12.117).

    Returns False when the merge is off."""
    try:
        k.policy.dup_anon_vma(k, dst, src)
    except Enomem:
        if k.policy.merge_nomem_fails and not new_range:
            raise
        k.event("NOTE", ref(dst), f"vma_merge(): anon_vma_clone({dst.name}, {src.name}) failed: "
                "no merge (-ENOMEM not reported)")
        return False
    return True


def remove_merged(k: Kernel, kept: Vma, gone: Vma) -> None:
    own = getattr(k.policy, "anon_vma_merge", None)  # a compiled tree's own anon_vma_merge()
    if own is None or not own(k, kept, gone):
        if gone.anon_vma is not None and kept.anon_vma is not gone.anon_vma:
            k.event("VM_BUG_ON", ref(kept), f"anon_vma_merge: {avname(kept.anon_vma)} != "
                    f"{avname(gone.anon_vma)} of {gone.name}")
        k.policy.unlink_anon_vmas(k, gone)
    gone.mm.remove(gone)


def merge_existing(k: Kernel, middle: Vma, start: int, end: int,
                   prot: frozenset[str], flags: frozenset[str], with_next: bool = True) -> Vma | None:
    """Try to merge [start, end) of ``middle``, about to get ``prot``/``flags``, with its
    neighbours (``with_next`` False: with the previous one only).  Returns the VMA now holding
    the range, or None when nothing merged."""
    if not flags.isdisjoint(VM_SPECIAL):   # (flags & VM_SPECIAL: a set made for each call)
        return None
    mm = middle.mm
    pgoff = middle.pgoff + (start - middle.start)
    left_side, right_side = start == middle.start, end == middle.end
    prev = mm.prev(middle) if left_side else None
    next = mm.next(middle) if right_side and with_next else None
    merge_left = can_merge_after(k, prev, middle, start, pgoff, prot, flags)
    merge_right = can_merge_before(k, next, middle, end, pgoff + (end - start), prot, flags)
    if (merge_left or merge_right) and left_side and right_side and not may_remove(k, middle):
        # vma_merge_existing_range(): "If we need to remove middle in its entirety but are
        # unable to do so, we have no sensible recourse but to abort the merge."
        return None
    if merge_left and merge_right and not may_remove(k, next):  # type: ignore[arg-type]
        merge_right = False         # "reduce the operation to merging prev and middle"
    if merge_left and merge_right:
        assert prev is not None and next is not None
        if _both_compatible(prev, next):
            if k.policy.merge_both_exports_next:
                exporter = next if next.anon_vma is not None else middle
            else:
                exporter = middle if middle.anon_vma is not None else next
            if not dup_or_give_up(k, prev, exporter):
                return None
            prev.end = next.end
            prev.flags = merged_flags(k, prev, flags, (middle, next))
            k.policy.rekey(k, prev)
            remove_merged(k, prev, middle)
            remove_merged(k, prev, next)
            k.event("MERGED", ref(prev), f"{middle.name} and {next.name} merged into {prev.name}")
            return prev
        # prev and next are incompatible: prev takes the middle alone (below)
    if merge_left:
        assert prev is not None
        if not dup_or_give_up(k, prev, middle):
            return None
        prev.end = end
        prev.flags = merged_flags(k, prev, flags, ())
        k.policy.rekey(k, prev)
        if right_side:
            remove_merged(k, prev, middle)
        else:
            mm.move_start(middle, end)
            k.policy.rekey(k, middle)
        k.event("MERGED", ref(prev), f"{_range(start, end)} of {middle.name} merged into {prev.name}")
        return prev
    if merge_right:
        assert next is not None
        if not dup_or_give_up(k, next, middle):
            return None
        next.flags = merged_flags(k, next, flags, ())
        if left_side:
            remove_merged(k, next, middle)
        else:
            middle.end = start
            k.policy.rekey(k, middle)
        mm.move_start(next, start)
        k.policy.rekey(k, next)
        k.event("MERGED", ref(next), f"{_range(start, end)} of {middle.name} merged into {next.name}")
        return next
    return None


def merge_new(k: Kernel, mm: Mm, new: Vma) -> Vma | None:
    """vma_merge_new_range() for an mmap: the new range has no anon_vma yet."""
    if not new.flags.isdisjoint(VM_SPECIAL):
        return None
    i = bisect_left(mm.starts, new.start)
    prev = mm.vmas[i - 1] if i > 0 else None
    next = mm.vmas[i] if i < len(mm.vmas) else None
    merge_left = can_merge_after(k, prev, new, new.start, new.pgoff, new.prot, new.flags)
    merge_right = can_merge_before(k, next, new, new.end, new.pgoff + (new.end - new.start),
                                   new.prot, new.flags)
    if merge_left and merge_right and not may_remove(k, next):  # type: ignore[arg-type]
        merge_right = False         # vma_merge_new_range(): "reduce the operation"
    if not merge_left and not merge_right:
        return None
    # __mmap_region(): a new (or expanded) mapping is soft-dirty (vm_flags_set(vma,
    # VM_SOFTDIRTY)); the model sets it only where the scenario stated it for the new range
    keep = frozenset({VM_SOFTDIRTY}) | k.policy.sticky_flags
    if merge_left and merge_right:
        assert prev is not None and next is not None
        if _both_compatible(prev, next):
            if not dup_or_give_up(k, prev, next, new_range=True):
                return None
            prev.flags = merged_flags(k, prev, prev.flags | (new.flags & keep), (next,), keep)
            prev.end = next.end
            k.policy.rekey(k, prev)
            remove_merged(k, prev, next)
            return prev
        merge_right = False
    if merge_left:
        assert prev is not None
        prev.flags = merged_flags(k, prev, prev.flags | (new.flags & keep), (), keep)
        prev.end = new.end
        k.policy.rekey(k, prev)
        return prev
    if merge_right:
        assert next is not None
        next.flags = merged_flags(k, next, next.flags | (new.flags & keep), (), keep)
        mm.move_start(next, new.start)
        k.policy.rekey(k, next)
        return next
    return None


def _range(start: int, end: int) -> str:
    return f"[{start << PAGE_SHIFT:#x}, {end << PAGE_SHIFT:#x})"
