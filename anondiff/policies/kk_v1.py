"""``v1``: Konstantin Khlebnikov, "[PATCH] mm/rmap: fix reusing mergeable anon_vma as parent
when fork" (6 Jan 2020, Message-ID <157830736034.8148.7070851958306750616.stgit@buzz>, on top
of v5.5-rc; never merged).

dup_mmap() sets ``tmp->vm_prev`` to the child's previous VMA (and ``vm_next`` to NULL) before
anon_vma_fork(), the prologue leaves anon_vma_clone(), and anon_vma_fork() shares the child
prev's anon_vma when the parent's vm_prev shares the parent VMA's and the two prevs start at
the same address (so a DONTCOPY gap cannot pair the wrong VMAs)::

    if (pvma->anon_vma && pprev && prev && pprev->anon_vma == pvma->anon_vma &&
        pprev->vm_start == prev->vm_start)
            vma->anon_vma = prev->anon_vma;

The chain is still cloned from the parent VMA, which does not hold a freshly allocated
``prev->anon_vma``: Li Xinhai's objection (<2020010710441027026650@gmail.com>), accepted by the
author.  Pages the child then writes go to an anon_vma rmap cannot reach from those VMAs (I2,
I6), and once the prev VMA is gone that anon_vma is freed under them.
"""
from __future__ import annotations

from ..kernel.fork import CHILD, PREPARE, DupMmap, ForkContext
from ..kernel.objects import Vma
from ..kernel.state import Kernel
from .base import VmaOp
from .degree import Degree
from ..kernel.rmap import anon_vma_fork_tail
from .base import mypyc_attr   # (compiled: Python subclasses allowed)


@mypyc_attr(allow_interpreted_subclasses=True)
class KkV1(Degree):
    name = "v1"
    aliases = ("kk-v1",)
    versions = "patch of 6 Jan 2020 (not merged)"
    cite = "Konstantin Khlebnikov v1 <157830736034.8148.7070851958306750616.stgit@buzz>"
    rule = "if the child's prev copies the parent's prev and that shares A, share the child-prev's anon_vma; chain = copy of the parent's"
    dup_mmap = DupMmap(vm_prev=CHILD, wipeonfork=PREPARE)
    src_guard = True                # on top of v5.5

    def anon_vma_fork(self, k: Kernel, vma: Vma, pvma: Vma, ctx: ForkContext) -> None:
        if pvma.anon_vma is None:
            if self.trace:
                self.trace.why("pvma->anon_vma is NULL: nothing to share")
            return
        vma.anon_vma = None
        prev, pprev = ctx.vm_prev, ctx.pvma_prev
        if (pprev is not None and prev is not None and pprev.anon_vma is pvma.anon_vma
                and pprev.start == prev.start):
            vma.anon_vma = prev.anon_vma
            if self.trace:
                self.trace.why("pprev %s shares pvma->anon_vma %s and starts where prev %s "
                               "does -> share prev->anon_vma %s, chain cloned from %s",
                               pprev, pvma.anon_vma, prev, prev.anon_vma, pvma)
        elif self.trace:
            if pprev is None or prev is None:
                self.trace.why("no %s", "pprev" if pprev is None else "prev")
            elif pprev.anon_vma is not pvma.anon_vma:
                self.trace.why("pprev %s uses %s, not pvma->anon_vma %s", pprev, pprev.anon_vma,
                               pvma.anon_vma)
            else:
                self.trace.why("pprev %s and prev %s start apart", pprev, prev)
        self._fork_clone(k, vma, pvma, ctx)
        if vma.anon_vma is not None:
            return
        if self.trace:
            self.trace.why("nothing reused -> a new anon_vma, child of pvma->anon_vma %s",
                           pvma.anon_vma)
        anon_vma_fork_tail(k, vma, pvma.anon_vma)
