"""``degree``: v4.14 .. v5.4, and again v5.6 .. v6.0-rc3 (v3.19 .. v4.13 is the era variant
``v3.19``: the same rule before VM_WIPEONFORK existed).

commit 7a3ef208e662 ("mm: prevent endless growth of anon_vma hierarchy") (v3.19) adds
``anon_vma->parent`` and ``anon_vma->degree`` and lets anon_vma_clone() at fork reuse the
oldest anon_vma of the parent's chain that is not the parent VMA's own and has degree < 2 (no
VMA and a single child, the intent goes); commit b800c91a0517 ("mm: fix corner case in anon_vma
endless growth prevention") keeps the reuse away from the split/merge paths by presetting
``dst->anon_vma``.  The chain itself is still a full copy of the parent's.

The dup_mmap modelled is v4.19's (the code the known answers were run on): ``vm_prev`` still
points into the parent when anon_vma_fork() runs, and a VM_WIPEONFORK VMA gets anon_vma_prepare()
at fork time, through the parent's neighbours.  v5.6 .. v6.0-rc3 differ only there
(vm_area_dup() clears the pointers; WIPEONFORK VMAs stay unfaulted: era ``v5.10``), and so do
v3.19 .. v4.13, where the flag does not exist yet: it came with commit d2cd9ede6e19
("mm,fork: introduce MADV_WIPEONFORK") in v4.14-rc1 (era ``v3.19``).

Known bug: the degree < 2 test is ambiguous, which allows double reuse (CVE-2022-42703, fixed by
commit 2555283eb40d ("mm/rmap: Fix anon_vma->degree ambiguity leading to double-reuse")).
"""
from __future__ import annotations

from typing import ClassVar

from ..kernel.fork import PARENT, PREPARE, DupMmap
from ..kernel.objects import AnonVma, Vma
from .base import ChainCopyPolicy, DegreeCounters
from .base import mypyc_attr   # (compiled: Python subclasses allowed)


@mypyc_attr(allow_interpreted_subclasses=True)
class Degree(ChainCopyPolicy):
    name = "degree"
    aliases: ClassVar[tuple[str, ...]] = ("v4.14", "v4.19", "v5.4")
    versions = "v4.14 .. v5.4, v5.6 .. v6.0-rc3; stable trees until the 2555283eb40d backport"
    cite = 'commit 7a3ef208e662 ("mm: prevent endless growth of anon_vma hierarchy")'
    rule = "link all of the parent's chain; reuse its oldest entry != parent's with degree < 2, else a new child"
    counters = DegreeCounters()
    dup_mmap = DupMmap(vm_prev=PARENT, wipeonfork=PREPARE)
    #: MREMAP_DONTUNMAP came in v5.7 (commit e346b3813067)
    mremap_dontunmap: ClassVar[str | None] = None

    #: v5.5's "mm/rmap.c: don't reuse anon_vma if we just want a copy" (Wei Yang's v4 1/2) adds
    #: ``src->anon_vma &&`` to the reuse test; it changes nothing at fork.
    src_guard: ClassVar[bool] = False

    def reusable(self, av: AnonVma, src: Vma) -> bool:
        if self.src_guard and src.anon_vma is None:
            if self.trace:
                self.trace.why("src->anon_vma is NULL: a copy, never a reuse (v5.5)")
            return False
        ok = av is not src.anon_vma and av.degree < 2
        if self.trace:
            if av is src.anon_vma:
                self.trace.why("%s is src->anon_vma -> not reused", av)
            else:
                self.trace.why("%s has degree %s %s 2 -> %s", av, av.degree,
                               "<" if ok else ">=", "reused" if ok else "not reused")
        return ok
