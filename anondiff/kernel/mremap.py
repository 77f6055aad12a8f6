"""mremap(): shrinking and growing in place, and moving all or part of a VMA (copy_vma(),
move_page_tables(), move_vma()), with MREMAP_MAYMOVE, MREMAP_FIXED and MREMAP_DONTUNMAP.
Addresses are page numbers here.

Read in three eras, which agree on everything this module models except what the policy
decides (the merge rule and the clone) and where MREMAP_DONTUNMAP exists:

* v4.19 mm/mremap.c and mm/mmap.c copy_vma() (``0x88888888/Linux-4.19`` @ 0d2fdee8b10f): the
  destination is merged by vma_merge(mm, prev, addr, addr + len, vma->vm_flags, vma->anon_vma,
  ...), i.e. is_mergeable_anon_vma(vma->anon_vma, tgt->anon_vma, tgt);
* v6.1 mm/mremap.c move_vma()/vma_to_resize()/do_mremap() and mm/mmap.c copy_vma() (Debian
  linux-source 6.1): the same, plus MREMAP_DONTUNMAP's unlink_anon_vmas() of a wholly moved VMA;
* the 2026 tree, mm/vma.c @ 009857a22860 copy_vma()/vma_merge_copied_range()/vma_expand()/
  vma_merge_extend() and mm/mremap.c @ 00ce3d63aef0 (struct vma_remap_struct): the range is
  merged with ``vmg->middle = NULL`` and ``vmg->copied_from`` = the source VMA, so the
  three-case is_mergeable_anon_vma() refuses case 1 when the source is a fork child
  (vma_is_fork_child(copied_from): commit 61f67c230a5e ("mm/vma: fix anon_vma UAF on mremap()
  faulted, unfaulted merge")), and vma_expand() then runs dup_anon_vma(target, copied_from);
  a VMA that is not merged is cloned with anon_vma_clone(new, vma, VMA_OP_REMAP).  Under the
  old rule that dup_anon_vma() never has anything to do (a faulted source only merges into a
  VMA with its own anon_vma), so one code path serves every era.

Not modelled: the 6.12 ``keep_source`` guard against
a MREMAP_DONTUNMAP self-merge, hugetlb, uffd, KSM, mlock accounting (VM_ACCOUNT is cleared and
restored around the unmap, which leaves the flags as they were).
"""
from __future__ import annotations

from typing import NamedTuple

from .merge import (VM_SPECIAL, close_allows_neighbour, dup_or_give_up, may_remove, merged_flags,
                    remove_merged)
from .mm import do_munmap
from .objects import VM_SHARED, AnonVma, Mm, Vma, VmaOp, flags_match
from .rmap import ref
from .state import Enomem, Kernel

#: mremap() flags, as the scenario names them.
MAYMOVE = "maymove"
FIXED = "fixed"
DONTUNMAP = "dontunmap"
MREMAP_FLAGS = (MAYMOVE, FIXED, DONTUNMAP)

#: Which VMAs MREMAP_DONTUNMAP may move, per era (``Policy.mremap_dontunmap``).
DONTUNMAP_ABSENT = None     # before v5.7: the flag does not exist (EINVAL)
DONTUNMAP_ANON = "anon"     # v5.7 .. v5.12: private anonymous VMAs only
DONTUNMAP_ANY = "any"       # commit a4609387859f ("mm: extend MREMAP_DONTUNMAP to non-anonymous mappings") (v5.13)


class MremapError(Exception):
    """mremap() fails with ``errno`` (nothing has changed yet)."""

    def __init__(self, errno: str, why: str) -> None:
        super().__init__(f"{why}: the kernel returns {errno}")
        self.errno = errno


class Remapped(NamedTuple):
    """What mremap() did: the VMA now holding the new range, and whether it is a new VMA
    (copy_vma() found nothing to merge with) that the caller should name."""

    vma: Vma
    created: bool
    moved: bool


def vma_is_anonymous(vma: Vma) -> bool:
    """vma_is_anonymous(): no vm_ops; a shared anonymous mapping has shmem's."""
    return vma.file is None and VM_SHARED not in vma.flags


def _mergeable(k: Kernel, tgt: Vma, anon_vma: AnonVma | None, copied_from: Vma | None) -> bool:
    # vmg->middle is NULL for a new (copied or extended) range: only vmg->anon_vma and
    # vmg->copied_from speak for it.
    return k.policy.is_mergeable_anon_vma(None, tgt, copied_from=copied_from, anon_vma=anon_vma)


def merge_new_range(k: Kernel, mm: Mm, start: int, end: int, pgoff: int, like: Vma,
                    copied_from: Vma | None, prev: Vma | None, next: Vma | None) -> Vma | None:
    """vma_merge_new_range() + vma_expand() (vma_merge() with prev up to 6.x) for the range
    [start, end) that gets ``like``'s flags, file and anon_vma and ``pgoff``; ``prev``/``next``
    are its neighbours.  Returns the VMA expanded over it, or None."""
    anon_vma = like.anon_vma
    if like.flags & VM_SPECIAL:
        return None
    left = (prev is not None and prev.end == start
            and prev.prot == like.prot and flags_match(prev.flags, like.flags)
            and prev.file == like.file and close_allows_neighbour(k, prev)
            and prev.pgoff + (prev.end - prev.start) == pgoff
            and _mergeable(k, prev, anon_vma, copied_from))
    right = (next is not None and next.start == end
             and next.prot == like.prot and flags_match(next.flags, like.flags)
             and next.file == like.file and close_allows_neighbour(k, next)
             and next.pgoff == pgoff + (end - start)
             and _mergeable(k, next, anon_vma, copied_from))
    if left and right:
        assert prev is not None and next is not None
        # can_vma_merge_right(): prev and next must agree with each other too
        right = prev.anon_vma is None or next.anon_vma is None or prev.anon_vma is next.anon_vma
        # from v6.12 next, which the merge would delete, may not have vm_ops->close
        right = right and may_remove(k, next)
    if left:
        assert prev is not None
        if right:
            assert next is not None
            if not dup_or_give_up(k, prev, next, new_range=True):
                return None
        if copied_from is not None and not dup_or_give_up(k, prev, copied_from, new_range=True):
            return None
        # vma_expand(): the target keeps its flags (2026: plus the range's and next's sticky ones)
        prev.flags = merged_flags(k, prev, prev.flags,
                                  (like, next) if right else (like,))  # type: ignore[arg-type]
        prev.end = next.end if right and next is not None else end
        k.dirty_vmas.add(prev)      # (for the incremental checks: range and maybe anon_vma)
        k.policy.rekey(k, prev)
        if right and next is not None:
            remove_merged(k, prev, next)
        return prev
    if right:
        assert next is not None
        if copied_from is not None and not dup_or_give_up(k, next, copied_from, new_range=True):
            return None
        next.flags = merged_flags(k, next, next.flags, (like,))
        mm.move_start(next, start)
        k.dirty_vmas.add(next)
        k.policy.rekey(k, next)
        return next
    return None


def _neighbours(mm: Mm, start: int) -> tuple[Vma | None, Vma | None]:
    """find_vma_prev() and the VMA after the gap at ``start``."""
    from bisect import bisect_left
    i = bisect_left(mm.starts, start)
    return (mm.vmas[i - 1] if i > 0 else None), (mm.vmas[i] if i < len(mm.vmas) else None)


def copy_vma(k: Kernel, vma: Vma, addr: int, length: int, pgoff: int) -> tuple[Vma, Vma, bool]:
    """copy_vma(): the VMA for [addr, addr + length) with ``vma``'s properties, merged into a
    neighbour when possible, else a vm_area_dup() given a clone of ``vma``'s chain.  Returns
    (new_vma, vma, created); ``vma`` changes when the source itself was merged into new_vma."""
    mm = vma.mm
    vma_start = vma.start
    faulted_in_anon_vma = True
    if vma_is_anonymous(vma) and vma.anon_vma is None:
        # an unfaulted anonymous VMA takes the pgoff of its new place, to merge there
        pgoff = addr
        faulted_in_anon_vma = False
    prev, next = _neighbours(mm, addr)
    new_vma = merge_new_range(k, mm, addr, addr + length, pgoff, vma, vma, prev, next)
    if new_vma is not None:
        k.event("MERGED", ref(new_vma), f"mremap of {vma.name} merged into {new_vma.name}")
        if new_vma.start <= vma_start < new_vma.end:
            # only an unfaulted VMA, whose pgoff was reset, can merge with itself
            # decided before the merge, which may have given the VMA a neighbour's anon_vma
            if faulted_in_anon_vma:
                k.event("VM_BUG_ON", ref(new_vma), "copy_vma: faulted VMA merged with itself")
            vma = new_vma
        return new_vma, vma, False
    new_vma = vma.dup()
    new_vma.start, new_vma.end, new_vma.pgoff = addr, addr + length, pgoff
    k.policy.anon_vma_clone(k, new_vma, vma, VmaOp.REMAP)
    mm.insert(new_vma)
    return new_vma, vma, True


def move_page_tables(mm: Mm, old_addr: int, new_addr: int, length: int) -> None:
    """The ptes move; each page keeps its ``mapping`` and ``index`` (copy_vma() kept the
    faulted VMA's pgoff, so the index stays linear at the new address)."""
    ptes = mm.ptes
    for p in mm.pages_in(old_addr, old_addr + length):
        ptes[p - old_addr + new_addr] = ptes.pop(p)
    mm.touch_range(old_addr, old_addr + length)
    mm.touch_range(new_addr, new_addr + length)


def move_vma(k: Kernel, vma: Vma, old_addr: int, old_len: int, new_len: int, new_addr: int,
             dontunmap: bool) -> Remapped:
    """move_vma(): copy, move the ptes, then unmap the old range (or, with MREMAP_DONTUNMAP,
    keep it mapped and empty, dropping the chain of a VMA that moved as a whole)."""
    new_pgoff = vma.pgoff + (old_addr - vma.start)
    new_vma, vma, created = copy_vma(k, vma, new_addr, new_len, new_pgoff)
    move_page_tables(vma.mm, old_addr, new_addr, old_len)
    if dontunmap:
        if new_vma is not vma and vma.start == old_addr and vma.end == old_addr + old_len:
            k.policy.unlink_anon_vmas(k, vma)
            k.dirty_vmas.add(vma)
            if vma.anon_vma is not None:
                # 6.x unlink_anon_vmas(): "vma would still be needed after unlink"
                vma.anon_vma = None
    else:
        try:
            do_munmap(k, vma.mm, old_addr, old_addr + old_len)
        except Enomem as e:
            # move_vma(): ``if (do_munmap(mm, old_addr, old_len, uf_unmap) < 0) { /* OOM:
            # unable to split vma, just get accounts right */ ... }`` and on to ``return
            # new_addr`` (mm/mremap.c@v6.1.176, v6.12.117; unmap_source_vma() in 7.2.13): the
            # old range stays mapped, its pages gone with the page tables, and mremap()
            # succeeds (the model said -ENOMEM; found by the AllPolicies state machine)
            k.event("NOTE", vma.mm.name, f"enomem: {e}: move_vma() could not split the old "
                    "range to unmap it (\"OOM: unable to split vma\"): it stays mapped, "
                    "without its pages, and mremap() returns the new address")
    return Remapped(new_vma, created, True)


def vma_merge_extend(k: Kernel, vma: Vma, delta: int) -> Vma:
    """vma_merge_extend() (vma_merge(mm, vma, vma->vm_end, ...) before 6.12): ``vma`` grows
    over the free range after it, and over ``next`` too when it abuts that range and may merge."""
    mm = vma.mm
    end = vma.end + delta
    _, next = _neighbours(mm, vma.end)
    failed = k.failed
    merged = merge_new_range(k, mm, vma.end, end, vma.pgoff + (vma.end - vma.start), vma, None,
                             vma, next)
    if merged is None and k.failed is not failed:
        # do_mremap(): ``vma = vma_merge_extend(...); if (!vma) { ret = -ENOMEM; ... }``
        raise k.enomem()
    if merged is None:
        # only VM_SPECIAL refuses the merge with itself; do_mremap() then fails
        raise MremapError("ENOMEM", f"{vma.name} is VM_SPECIAL: vma_merge() will not extend it")
    assert merged is vma
    if next is not None and next.start < vma.end:
        k.event("MERGED", ref(vma), f"{next.name} merged into {vma.name} as it grew")
    return vma


def mremap(k: Kernel, mm: Mm, addr: int, old_len: int, new_len: int, flags: frozenset[str],
           new_addr: int | None, task_size: int) -> Remapped:
    """do_mremap() / mremap_to(): ``new_addr`` is MREMAP_FIXED's address, or the one
    get_unmapped_area() returns when the mapping has to move (the model does not pick one).
    Every refusal raises MremapError before anything changes."""
    dontunmap_era = k.policy.mremap_dontunmap
    if DONTUNMAP in flags and dontunmap_era is DONTUNMAP_ABSENT:
        raise MremapError("EINVAL", "MREMAP_DONTUNMAP does not exist before v5.7")
    if FIXED in flags and MAYMOVE not in flags:
        raise MremapError("EINVAL", "MREMAP_FIXED without MREMAP_MAYMOVE")
    if DONTUNMAP in flags and (MAYMOVE not in flags or old_len != new_len):
        raise MremapError("EINVAL", "MREMAP_DONTUNMAP needs MREMAP_MAYMOVE and old_len == new_len")
    moves = FIXED in flags or DONTUNMAP in flags
    vma_first = k.policy.mremap_finds_vma_first
    if moves and not vma_first:
        # check_mremap_params() (the vma_remap_struct code: 7.2's tree, 6.18 live), and
        # mremap_to() before v5.16, check the destination before the old range is looked at
        # (found by anondiff live on 6.18: EFAULT predicted for a MREMAP_DONTUNMAP past the
        # end of its VMA onto itself, the kernel said EINVAL)
        _check_destination(addr, old_len, new_len, new_addr, task_size)
    vma = mm.find(addr)
    if vma is None:
        raise MremapError("EFAULT", "no VMA at the old address")
    if moves and vma_first:
        # v5.16 .. v6.15: sys_mremap()'s vma_lookup(), then mremap_to() (mm/mremap.c@v6.1.176,
        # v6.12.117), whose checks still come before vma_to_resize()'s
        _check_destination(addr, old_len, new_len, new_addr, task_size)
    if DONTUNMAP in flags and "dontexpand" in vma.flags:
        raise MremapError("EINVAL", f"MREMAP_DONTUNMAP of {vma.name}, a VM_DONTEXPAND mapping")
    # check_prep_vma() (6.18: "Below only meaningful if we expand or move a VMA"; before, the
    # shrink of do_mremap() and of mremap_to() ran before vma_to_resize()): a shrink or a same
    # size call in place may cross VMAs ("We permit crossing of boundaries for the range being
    # unmapped due to a shrink"); a move or growth may not, a shrink then counting new_len
    # (found by anondiff live on 6.18: EFAULT predicted, the kernel shrank)
    # 6.17+ do_mremap() (mm/mremap.c of the 7.2 Debian tree, as 6.18 runs it): a move of the
    # same size with MREMAP_FIXED (vrm_move_only()) is remap_move(), which moves every VMA of
    # the old range (found by anondiff live on 6.18: EFAULT predicted, the kernel moved them)
    move_only = FIXED in flags and old_len == new_len and k.policy.mremap_moves_several
    if (FIXED in flags or DONTUNMAP in flags or new_len > old_len) and not move_only \
            and min(old_len, new_len) > vma.end - addr:
        raise MremapError("EFAULT", f"the range crosses the end of {vma.name}")
    if new_len > old_len and "dontexpand" in vma.flags:
        raise MremapError("EFAULT", f"{vma.name} is VM_DONTEXPAND and cannot grow")
    if DONTUNMAP in flags and dontunmap_era == DONTUNMAP_ANON and not vma_is_anonymous(vma):
        raise MremapError("EINVAL", "MREMAP_DONTUNMAP of a shared or file mapping before v5.13")

    if moves:
        # mremap_to()
        assert new_addr is not None
        if move_only and vma.end < addr + old_len:
            return remap_move(k, mm, addr, old_len, new_addr, DONTUNMAP in flags)
        if FIXED not in flags:
            _must_be_free(mm, new_addr, new_len)
        elif mm.overlapping(new_addr, new_addr + new_len):
            do_munmap(k, mm, new_addr, new_addr + new_len)
        if old_len > new_len:
            do_munmap(k, mm, addr + new_len, addr + old_len)
            old_len = new_len
        vma = mm.find(addr)
        assert vma is not None
        return move_vma(k, vma, addr, old_len, new_len, new_addr, DONTUNMAP in flags)

    if old_len >= new_len:
        # shrinking (or nothing) in place
        if old_len > new_len:
            do_munmap(k, mm, addr + new_len, addr + old_len)
        vma = mm.find(addr)
        assert vma is not None
        return Remapped(vma, False, False)

    delta = new_len - old_len
    if old_len == vma.end - addr and vma.end + delta <= task_size \
            and not mm.overlapping(vma.end, vma.end + delta):
        # vma_expandable(): grow in place (vma_merge_extend() refuses a VM_SPECIAL VMA before
        # anything changes)
        return Remapped(vma_merge_extend(k, vma, delta), False, False)
    if MAYMOVE not in flags:
        raise MremapError("ENOMEM", f"{vma.name} cannot grow in place and MREMAP_MAYMOVE is not set")
    if new_addr is None:
        raise MremapError("ENOMEM", "the mapping must move: give the address get_unmapped_area() "
                          "returns ('to')")
    if new_addr + new_len > task_size:
        raise MremapError("ENOMEM", "the destination ends beyond TASK_SIZE")
    _must_be_free(mm, new_addr, new_len)
    return move_vma(k, vma, addr, old_len, new_len, new_addr, False)


def remap_move(k: Kernel, mm: Mm, addr: int, length: int, new_addr: int,
               dontunmap: bool) -> Remapped:
    """remap_move() (6.18 mm/mremap.c): MREMAP_FIXED of the same size over several VMAs moves
    each one's part of [addr, addr + length) in turn, the gaps between them kept ("we map B' at
    A'->vm_end + X"): for each, mremap_to() unmaps its destination and move_vma() moves it.  No
    gap is allowed at the start of the range; one after the last VMA is.  (vma_multi_allowed()
    refuses only uffd VMAs and files with an unknown get_unmapped_area(), neither modelled.)
    Returns what the first move did."""
    end = addr + length
    pieces: list[tuple[int, int, int]] = []
    last_end = None
    for v in mm.overlapping(addr, end):
        a = max(v.start, addr)
        pieces.append((a, min(end, v.end) - a, 0 if last_end is None else v.start - last_end))
        last_end = v.end
    first: Remapped | None = None
    target = new_addr
    for a, n, offset in pieces:
        target += offset
        if mm.overlapping(target, target + n):
            do_munmap(k, mm, target, target + n)
        vma = mm.find(a)
        assert vma is not None
        done = move_vma(k, vma, a, n, n, target, dontunmap)
        first = first or done
        target += n
    assert first is not None
    return first


def _check_destination(addr: int, old_len: int, new_len: int, new_addr: int | None,
                       task_size: int) -> None:
    """mremap_to()'s (check_mremap_params()'s) checks of a destination: -EINVAL."""
    if new_addr is None:
        raise MremapError("EINVAL", "no destination address")
    if new_addr + new_len > task_size:
        raise MremapError("EINVAL", "the destination ends beyond TASK_SIZE")
    if addr + old_len > new_addr and new_addr + new_len > addr:
        raise MremapError("EINVAL", "the old and new ranges overlap")


def _must_be_free(mm: Mm, start: int, length: int) -> None:
    hit = mm.overlapping(start, start + length)
    if hit:
        raise MremapError("EINVAL", f"the destination overlaps {hit[0].name}, which "
                          "get_unmapped_area() would never return")
