"""VMA operations around the anon_vma code: split, munmap, mprotect/madvise, mmap, exit and
write faults.  Addresses are page numbers here.  Naming the pieces is the engine's business."""
from __future__ import annotations

from typing import Callable, Final

from .merge import merge_existing
from .objects import VM_ACCOUNT, VM_SHARED, Mm, Vma, VmaOp, vm_flags
from .state import Kernel


def split_vma(k: Kernel, vma: Vma, addr: int, new_below: bool) -> Vma:
    """__split_vma(): the new VMA is a byte copy of the old one (anon_vma included) covering
    [start, addr) when ``new_below``, else [addr, end); anon_vma_clone() copies the chain, then
    the old VMA's chains are re-keyed in the interval trees."""
    mm = vma.mm
    new = vma.dup()
    if new_below:
        new.end = addr
    else:
        new.start = addr
        new.pgoff = vma.pgoff + (addr - vma.start)
    k.policy.anon_vma_clone(k, new, vma, VmaOp.SPLIT)
    if new_below:
        mm.move_start(vma, addr)
    else:
        vma.end = addr
    k.policy.rekey(k, vma)
    mm.insert(new)
    return new


def isolate(k: Kernel, mm: Mm, start: int, end: int) -> list[Vma]:
    """Split the VMAs at ``start`` and ``end`` as munmap does and return the VMAs now exactly
    covering the mapped part of [start, end).

    The VMA object that keeps the range is the original one, as in the kernel: at ``start`` the
    new VMA is the part below (new_below = 1), at ``end`` the part above.
    """
    vmas = mm.overlapping(start, end)
    if not vmas:
        return []
    first = vmas[0]
    if first.start < start:
        split_vma(k, first, start, new_below=True)
    last = vmas[-1]
    if last.end > end:
        split_vma(k, last, end, new_below=False)
    return mm.overlapping(start, end)


def zap_pages(mm: Mm, start: int, end: int) -> None:
    """zap_page_range: drop the ptes, and a page when its last mapping goes (in any order:
    only the mapcounts change, so the page numbers are not sorted)."""
    mm.touch_range(start, end)
    ptes = mm.ptes
    for p in mm.pages_in(start, end, ordered=False):
        page = ptes[p]                  # (not ptes.pop(p): compiled, a method call)
        del ptes[p]
        page.mapcount -= 1


def do_munmap(k: Kernel, mm: Mm, start: int, end: int) -> None:
    victims = isolate(k, mm, start, end)
    zap_pages(mm, start, end)
    for vma in victims:               # free_pgtables(): ascending
        k.policy.unlink_anon_vmas(k, vma)
    for vma in victims:
        mm.remove(vma)


def exit_mmap(k: Kernel, mm: Mm) -> None:
    # zap_pages() of the whole address space (2**64 bytes are 2**52 pages: a bound the compiled
    # model keeps in a machine integer), every pte at once
    mm.touch_range(0, 1 << 52)
    for page in mm.ptes.values():
        page.mapcount -= 1
    mm.ptes.clear()
    for vma in mm.vmas:
        k.policy.unlink_anon_vmas(k, vma)
    mm.vmas.clear()
    mm.starts.clear()


def dup_mm_failed(k: Kernel, child: Mm) -> None:
    """dup_mmap() failed (anon_vma_fork() or, v4.14..v5.5, a VM_WIPEONFORK VMA's
    anon_vma_prepare() returned -ENOMEM): the VMA being copied was freed after its own cleanup,
    and dup_mm() drops the new mm (mmput() -> exit_mmap()), which unmaps and unlinks the VMAs
    copied before it, in address order; fork() returns -ENOMEM and the child never runs.

    Every era ends the same way, by different means: v4.19 (kernel/fork.c@v4.19) built the VMA
    list one by one, so the list ends at the failure; v6.1 (kernel/fork.c@v6.1.176) the maple
    tree likewise; since __mt_dup() (v6.8) the child's tree starts as a full copy of the
    parent's, and dup_mmap() marks the failing range with XA_ZERO_ENTRY, which exit_mmap()
    stops at (kernel/fork.c@v6.12.117), and 7.2 (mm/mmap.c@7.2.13) tears the VMAs down itself
    only up to ``mpnt->vm_start`` (tear_down_vmas()) and destroys the tree."""
    exit_mmap(k, child)
    del k.mms[child.name]


def change_vmas(k: Kernel, mm: Mm, start: int, end: int,
                change: Callable[[Vma], tuple[frozenset[str], frozenset[str]]]) -> None:
    """mprotect_fixup / madvise_update_vma over a range, one VMA at a time: ``change(vma)``
    returns the new (prot, flags).  A VMA whose protection and flags do not change is left
    alone; otherwise vma_merge() is tried first and the VMA split only if nothing merged.

    The range is mapped throughout: the engine refuses one with a hole (mprotect() and
    madvise() return -ENOMEM), and a merge or a split only moves boundaries inside it."""
    at = start
    while at < end:
        vma = mm.find(at)
        assert vma is not None
        sub_end = min(end, vma.end)
        prot, flags = change(vma)
        if prot != vma.prot or flags != vma.flags:
            if merge_existing(k, vma, at, sub_end, prot, flags) is None:
                if vma.start < at:
                    split_vma(k, vma, at, new_below=True)
                if vma.end > sub_end:
                    split_vma(k, vma, sub_end, new_below=False)
                vma.prot, vma.flags = prot, vm_flags(flags)
        at = sub_end


#: VM_NORESERVE (MAP_NORESERVE): neither mmap nor mprotect makes such a mapping accountable
VM_NORESERVE: Final = "noreserve"


def mprotect_flags(k: Kernel, vma: Vma, prot: frozenset[str]) -> tuple[frozenset[str], frozenset[str]]:
    """mprotect_fixup(): the new protection and what happens to VM_ACCOUNT.

    Nothing changes when the protection does not (the early ``newflags == oldflags`` return).
    A private VMA turning writable gains VM_ACCOUNT unless it was writable already.  Since
    commit 9b9143298585 ("mm/mprotect: allow unfaulted VMAs to be unaccounted on mprotect()")
    (v6.7; Lorenzo Stoakes, <bfef277462dd0dc75ce86e051bebc8b063f8d885.1696694712.git.lstoakes@gmail.com>)
    an anonymous VMA with no anon_vma yet that is made non-writable also loses it; before, it was
    never taken away (the policy's ``mprotect_unaccounts_unfaulted``).
    """
    flags = vma.flags
    if prot == vma.prot:
        return prot, flags
    if "write" in prot:
        if (VM_SHARED not in flags and "write" not in vma.prot and VM_ACCOUNT not in flags
                and VM_NORESERVE not in flags):
            flags = flags | {VM_ACCOUNT}
    elif (k.policy.mprotect_unaccounts_unfaulted and VM_ACCOUNT in flags
          and vma.file is None and VM_SHARED not in flags and vma.anon_vma is None):
        flags = flags - {VM_ACCOUNT}
    return prot, flags


def write_fault(k: Kernel, vma: Vma, page_no: int) -> None:
    """A write to one page of a private VMA: do_anonymous_page (or the COW of a file page),
    wp_page_copy for a page others map too, or the reuse path with folio_move_anon_rmap."""
    if VM_SHARED in vma.flags:
        return                          # page cache, never anon
    mm = vma.mm
    k.dirty_vmas.add(vma)               # its ptes change
    prev, next = mm.neighbours(vma)
    k.policy.anon_vma_prepare(k, vma, prev, next)
    index = vma.pgoff + (page_no - vma.start)
    page = mm.ptes.get(page_no)
    if page is not None and page.mapcount == 1:
        page.mapping = vma.anon_vma  # type: ignore[assignment]  # folio_move_anon_rmap()
        return
    if page is not None:
        page.mapcount -= 1              # COW: the copy is the new page
    assert vma.anon_vma is not None
    mm.ptes[page_no] = k.new_page(vma.anon_vma, index)
