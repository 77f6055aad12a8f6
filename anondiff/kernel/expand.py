"""In-place expansion outside mremap: brk() and the stack growing down.  Addresses are page
numbers here.

* brk() (mm/mmap.c: v4.19 do_brk_flags() through vma_merge(); v6.1 do_brk_flags() with
  can_vma_merge_after() on the VMA ending at the old break; v6.12+ vma_merge_new_range() with
  ``VMG_FLAG_JUST_EXPAND`` / ``vmg.just_expand``): the heap VMA grows when its flags are the
  brk flags (``VM_DATA_DEFAULT_FLAGS | VM_ACCOUNT``: read-write, accountable), its pgoff is
  linear and the merge rule accepts a range with no anon_vma (so not after a fork: "singular
  lists do not occur after forking, so the expand will only happen on new VMAs"); otherwise a
  new anonymous VMA is made for the range.  The break never grows into the page before the
  next VMA (nor into a growsdown VMA's guard gap): sys_brk() then leaves it where it was.
  Shrinking unmaps.  The era code differs in how, not in what.
* expand_downwards() (mm/mmap.c, every era): a fault below a VM_GROWSDOWN VMA grows it down to
  the faulting page, unless a non-growsdown accessible VMA lies within ``stack_guard_gap``
  below; it first runs anon_vma_prepare() ("we must make sure the anon_vma is allocated so
  that the anon_vma locking is not a noop"), then moves vm_start and vm_pgoff with the
  interval trees re-keyed.
"""
from __future__ import annotations

from typing import Final

from bisect import bisect_right

from .mm import do_munmap
from .mremap import merge_new_range
from .objects import VM_ACCOUNT, Mm, Vma
from .state import Kernel

#: vm_flags that mean VM_GROWSDOWN in the model
VM_GROWSDOWN: Final = "growsdown"
#: stack_guard_gap: 256 pages (1 MiB with 4 KiB pages), the default since v4.12
STACK_GUARD_GAP = 256
#: what do_brk_flags() gives a heap VMA (x86: VM_DATA_DEFAULT_FLAGS is read-write)
BRK_PROT = frozenset({"read", "write"})
BRK_FLAGS = frozenset({VM_ACCOUNT})


class ExpandError(Exception):
    """The kernel refuses the expansion (``what`` says how userspace sees it)."""


def vm_start_gap(vma: Vma) -> int:
    if VM_GROWSDOWN in vma.flags:
        return max(vma.start - STACK_GUARD_GAP, 0)
    return vma.start


def brk(k: Kernel, mm: Mm, oldbrk: int, newbrk: int, name: str) -> Vma | None:
    """sys_brk() from ``oldbrk`` to ``newbrk`` (page aligned).  Returns the VMA made for the
    new range, or None when it grew or shrank an existing one."""
    if newbrk <= oldbrk:
        do_munmap(k, mm, newbrk, oldbrk)
        return None
    # vma_find(&vmi, ...) from oldbrk: the VMA containing oldbrk, else the next one (one that
    # starts at or below the old break is in the way too: found by anondiff live)
    i = bisect_right(mm.starts, oldbrk)
    if i and mm.vmas[i - 1].end > oldbrk:
        i -= 1
    nxt = mm.vmas[i] if i < len(mm.vmas) else None
    if nxt is not None and newbrk + 1 > vm_start_gap(nxt):
        raise ExpandError(f"the new break leaves no page before {nxt.name}: brk() returns "
                          "the old break")
    prev = mm.find(oldbrk - 1) if oldbrk else None
    if prev is not None and prev.end != oldbrk:
        prev = None
    heap = Vma(mm, oldbrk, newbrk, oldbrk, BRK_PROT, BRK_FLAGS, None, name)
    if prev is not None:
        merged = merge_new_range(k, mm, oldbrk, newbrk, oldbrk, heap, None, prev, None)
        if merged is not None:
            return None
    mm.insert(heap)
    return heap


def expand_downwards(k: Kernel, vma: Vma, page: int) -> None:
    """A fault at ``page`` below the VM_GROWSDOWN ``vma``."""
    mm = vma.mm
    prev = mm.prev(vma)
    if prev is not None and prev.end > page:
        raise ExpandError(f"{prev.name} is in the way")
    if (prev is not None and VM_GROWSDOWN not in prev.flags and prev.prot
            and page - prev.end < STACK_GUARD_GAP):
        raise ExpandError(f"{prev.name} is within the stack guard gap ({STACK_GUARD_GAP} pages)")
    k.policy.anon_vma_prepare(k, vma, prev, mm.next(vma))
    mm.move_start(vma, page)
    k.policy.rekey(k, vma)


def growsdown_above(mm: Mm, page: int) -> Vma | None:
    """The VMA a fault at an unmapped ``page`` would expand: the next one, if VM_GROWSDOWN."""
    i = bisect_right(mm.starts, page)
    nxt = mm.vmas[i] if i < len(mm.vmas) else None
    if nxt is not None and VM_GROWSDOWN in nxt.flags:
        return nxt
    return None
