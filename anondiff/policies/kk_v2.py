"""``v2``: Konstantin Khlebnikov, "[PATCH v2 1/2] mm/rmap: fix and simplify reusing mergeable
anon_vma as parent when fork" (<157839239609.694.10268055713935919822.stgit@buzz>) and "[PATCH
v2 2/2] kernel/fork: set VMA's mm/prev/next right after vm_area_dup in dup_mmap"
(<157839239842.694.2288178566540902852.stgit@buzz>), 7 Jan 2020, on top of v5.5-rc; never merged.

anon_vma_fork() gets dup_mmap()'s ``prev`` (the last child VMA copied) and, before anything
else, shares its anon_vma when that anon_vma is a child of the parent VMA's one, copying the
*prev's* chain, so the shared anon_vma is linked::

    if (prev && prev->anon_vma && prev->anon_vma->parent == pvma->anon_vma) {
            vma->anon_vma = prev->anon_vma;
            return anon_vma_clone(vma, prev);
    }

An old anon_vma picked by the degree heuristic is therefore never shared by the next VMA: it
gets exactly one new user per pick (Li Xinhai, <20200110112357351531132@gmail.com>).  2/2 makes
a WIPEONFORK VMA's anon_vma_prepare() see the child's previous VMA instead of the parent's
neighbours.
"""
from __future__ import annotations

from ..kernel.fork import CHILD, PREPARE, DupMmap, ForkContext
from ..kernel.objects import Vma
from ..kernel.state import Kernel
from .base import VmaOp
from .degree import Degree
from .base import mypyc_attr   # (compiled: Python subclasses allowed)


@mypyc_attr(allow_interpreted_subclasses=True)
class KkV2(Degree):
    name = "v2"
    aliases = ("kk-v2",)
    versions = "patch series of 7 Jan 2020 (not merged)"
    cite = "Konstantin Khlebnikov v2 <157839239609.694.10268055713935919822.stgit@buzz>"
    rule = "if the child's prev anon_vma is a child of A, share it with a copy of prev's chain; else degree"
    dup_mmap = DupMmap(vm_prev=CHILD, wipeonfork=PREPARE)
    src_guard = True                # on top of v5.5

    def anon_vma_fork(self, k: Kernel, vma: Vma, pvma: Vma, ctx: ForkContext) -> None:
        if pvma.anon_vma is None:
            if self.trace:
                self.trace.why("pvma->anon_vma is NULL: nothing to share")
            return
        prev = ctx.prev
        if prev is not None and prev.anon_vma is not None and prev.anon_vma.parent is pvma.anon_vma:
            if self.trace:
                self.trace.why("prev %s uses %s, %s->parent == %s == pvma->anon_vma -> share "
                               "%s, clone %s's chain", prev, prev.anon_vma, prev.anon_vma,
                               pvma.anon_vma, prev.anon_vma, prev)
            vma.anon_vma = prev.anon_vma
            self._fork_clone(k, vma, prev, ctx)
            return
        if self.trace:
            if prev is None:
                self.trace.why("no prev")
            elif prev.anon_vma is None:
                self.trace.why("prev %s has no anon_vma", prev)
            else:
                self.trace.why("prev %s uses %s, whose parent is %s, not pvma->anon_vma %s",
                               prev, prev.anon_vma, prev.anon_vma.parent, pvma.anon_vma)
        super().anon_vma_fork(k, vma, pvma, ctx)
