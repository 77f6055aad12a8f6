"""dup_mmap(): the fork loop of each era (spec section 1.11), calling the policy's anon_vma_fork."""
from __future__ import annotations

from typing import Any, Final, NamedTuple

from .. import progress as _progress
from ..progress import EVERY, bar
from .objects import VM_DONTCOPY, VM_WIPEONFORK, Mm, Page, Vma
from .rmap import ref
from .state import Kernel, KernelCrash

#: What ``tmp->vm_prev`` / ``tmp->vm_next`` hold when anon_vma_fork() runs.
PARENT: Final = "parent"   # vm_area_dup() byte copy: still the parent's neighbours (up to v5.5)
CHILD: Final = "child"     # Konstantin Khlebnikov's v1 / v2 2/2: the child's previous VMA, no next
NONE: Final = "none"       # v5.6 vm_area_dup() clears them; v6.1 maple tree has none

#: What happens to a VM_WIPEONFORK VMA.
ABSENT: Final = "absent"   # before v4.14 the flag does not exist: copied like any VMA
PREPARE: Final = "prepare" # v4.14..v5.5: tmp->anon_vma = NULL; anon_vma_prepare(tmp) at fork time
EMPTY: Final = "empty"     # v5.6+ ("mm: don't prepare anon_vma if vma has VM_WIPEONFORK"): NULL, no prepare


class DupMmap(NamedTuple):
    vm_prev: str
    wipeonfork: str


class ForkContext:
    """What anon_vma_fork() (or the patch versions of it) can see of the surroundings; one per
    dup_mmap(), updated for each VMA."""

    __slots__ = ("prev", "vm_prev", "vm_next", "pvma_prev", "scratch")

    def __init__(self) -> None:
        self.prev: Vma | None = None        # dup_mmap's local 'prev': the last child VMA copied
        self.vm_prev: Vma | None = None     # tmp->vm_prev at that moment (see DupMmap.vm_prev)
        self.vm_next: Vma | None = None
        self.pvma_prev: Vma | None = None   # the parent's vm_prev (DONTCOPY VMAs included)
        self.scratch: dict = {}             # per-fork state a policy may keep


def dup_mmap(k: Kernel, parent: Mm, child: Mm, rename: dict[str, str] | None = None) -> None:
    """``rename``: the child's name of each VMA copied, by its parent's name; None: each copy
    keeps its parent's name (a fork without ``names``: no dict built, none looked up), here and
    in a policy that runs dup_mmap() itself (``Policy._own_dup_mmap``)."""
    policy = k.policy
    if policy._own_dup_mmap(k, parent, child, rename):
        return  # a compiled tree: all of its anon_vma_fork() calls in one C call
    era: DupMmap = policy.dup_mmap
    pvmas = parent.vmas
    last = len(pvmas) - 1
    parent_links, child_links = era.vm_prev == PARENT, era.vm_prev == CHILD
    prev: Vma | None = None
    ctx = ForkContext()
    # (bar() says None below its threshold itself, but it is Python, and the title a string
    # built for nothing: a call into the interpreter on every fork of every small replay)
    progress = bar(f"fork {parent.name} -> {child.name}", len(pvmas)) \
        if len(pvmas) >= _progress.THRESHOLD else None
    # The child's names in the parent's order, as the engine builds ``rename``: each taken in
    # turn, looked up only where that order does not hold (a lookup in a large dict misses
    # the cache; the next entry does not).  (Two lists indexed, not next() on an iterator:
    # compiled, next() is a call into the interpreter for every VMA.)
    olds, news = (list(rename), list(rename.values())) if rename is not None else ([], [])
    # The parent's start of each VMA as the int object its list holds (``Any``: compiled, not
    # unboxed): the child's list of starts and its page table take that one object, where
    # ``mpnt.start`` would make a new int for each (two of 32 bytes per VMA copied).
    pstarts: list[Any] = parent.starts
    j = 0
    for i, mpnt in enumerate(pvmas):
        if progress and not i % EVERY:
            progress.update(i)
        flags = mpnt.flags
        if VM_DONTCOPY in flags:
            continue
        if rename is None:
            name = mpnt.name
        else:
            name = news[j] if olds[j] is mpnt.name else rename[mpnt.name]
            j += 1
        # vm_area_dup() (Vma.dup), inline: this loop is the whole cost of a large fork
        tmp = Vma(child, mpnt.start, mpnt.end, mpnt.pgoff, mpnt.prot, flags, mpnt.file, name)
        tmp.anon_vma = mpnt.anon_vma
        pvma_prev = pvmas[i - 1] if i else None
        if parent_links:
            vm_prev, vm_next = pvma_prev, (pvmas[i + 1] if i < last else None)
        elif child_links:
            vm_prev, vm_next = prev, None
        else:
            vm_prev = vm_next = None
        wipe = VM_WIPEONFORK in flags
        if wipe and era.wipeonfork == ABSENT:
            k.event("NOTE", ref(tmp), "VM_WIPEONFORK does not exist in this era; copied normally")
            wipe = False
        if wipe:
            tmp.anon_vma = None
            if era.wipeonfork == PREPARE:
                policy.anon_vma_prepare(k, tmp, vm_prev, vm_next)
        else:
            ctx.prev, ctx.vm_prev, ctx.vm_next, ctx.pvma_prev = prev, vm_prev, vm_next, pvma_prev
            try:    # (a method call, not a bound method in a local: compiled, a direct call)
                policy.anon_vma_fork(k, tmp, mpnt, ctx)
            except KernelCrash as crash:
                crash.where = ref(tmp)
                raise
        child_takes(parent, child, tmp, mpnt, wipe, pstarts[i])
        prev = tmp
    if progress:
        progress.close()


def child_takes(parent: Mm, child: Mm, tmp: Vma, mpnt: Vma, wipe: bool,
                start: Any = None) -> None:
    """The end of dup_mmap()'s loop for one VMA: the copy ``tmp`` of ``mpnt`` goes into the
    child's list and, unless VM_WIPEONFORK emptied it, maps the parent's anonymous pages.
    ``start``: ``mpnt.start`` as the int object the parent's list holds (see
    :func:`dup_mmap`); None: ``mpnt.start``."""
    if start is None:
        start = mpnt.start
    if child.dirty is None:
        cstarts: list[Any] = child.starts   # (``Any``: compiled, ``start`` stays that object)
        cstarts.append(start)
        child.vmas.append(tmp)
    else:
        child.append(tmp)
    if not wipe and (mpnt.anon_vma is not None or mpnt.avcs):
        if mpnt.end - mpnt.start == 1:      # copy_page_range() of one page, inline
            pptes: dict[Any, Page] = parent.ptes
            page = pptes.get(start)
            if page is not None:
                page.mapcount += 1
                cptes: dict[Any, Page] = child.ptes
                cptes[start] = page
        else:
            copy_page_range(parent, child, mpnt)


def children_take(parent: Mm, child: Mm, tmps: list[Vma], mpnts: list[Vma],
                  wipes: list[bool]) -> None:
    """:func:`child_takes` for each copy ``tmps[i]`` of ``mpnts[i]`` in order, in bulk (a
    compiled tree's dup_mmap(), whose anon_vma_fork() calls were one call into C).  ``mpnts``
    are parent VMAs in the parent's order: as many as the parent has, they are all of them,
    and the parent's list of starts holds each one's start as an int object, which the child's
    list and page table take (as :func:`dup_mmap` does: compiled, ``mpnt.start`` would make a
    new int for each)."""
    pstarts: list[Any] = parent.starts
    every = len(mpnts) == len(pstarts)
    if child.dirty is None and (not child.vmas or not tmps or child.vmas[-1].end <= tmps[0].start):
        child.vmas.extend(tmps)
        cstarts: list[Any] = child.starts
        cstarts.extend(pstarts if every else [tmp.start for tmp in tmps])
    else:
        for tmp in tmps:
            child.append(tmp)
    pptes: dict[Any, Page] = parent.ptes
    cptes: dict[Any, Page] = child.ptes
    for i, mpnt in enumerate(mpnts):
        if wipes[i] or (mpnt.anon_vma is None and not mpnt.avcs):
            continue
        start: Any = pstarts[i] if every else mpnt.start
        if mpnt.end - mpnt.start == 1:      # copy_page_range() of one page, inline
            page = pptes.get(start)
            if page is not None:
                page.mapcount += 1
                cptes[start] = page
        else:
            copy_page_range(parent, child, mpnt)


def copy_page_range(parent: Mm, child: Mm, vma: Vma) -> None:
    """Share the anonymous pages: the child maps the same pages, mapping unchanged."""
    if vma.anon_vma is None and not vma.avcs:
        return
    pptes, cptes = parent.ptes, child.ptes
    start, end = vma.start, vma.end
    if end - start <= len(pptes):
        for p in range(start, end):                     # ascending, as the parent's
            page = pptes.get(p)                         # (one lookup a page, no list)
            if page is not None:
                page.mapcount += 1
                cptes[p] = page
        return
    # more pages than ptes (a large VMA, sparsely faulted): the ptes in it, sorted
    for p in parent.pages_in(start, end):
        page = pptes[p]
        page.mapcount += 1
        cptes[p] = page
