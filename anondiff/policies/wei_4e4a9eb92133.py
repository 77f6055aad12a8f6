"""``wei-4e4a9eb92133``: commit 4e4a9eb92133 ("mm/rmap.c: reuse mergeable anon_vma as parent
when fork") as shipped in v5.5 (and v5.6-rc1/rc2, until Li Xinhai's revert).

Wei Yang's v4 (Message-ID <20191011072256.16275-2-richardw.yang@linux.intel.com>) adds a
prologue to anon_vma_clone()::

    if (!dst->anon_vma && src->anon_vma && pprev && pprev->anon_vma == src->anon_vma)
            dst->anon_vma = prev->anon_vma;      /* prev = dst->vm_prev, pprev = src->vm_prev */

and its 1/2, "mm/rmap.c: don't reuse anon_vma if we just want a copy", the ``src->anon_vma``
test in the reuse loop.  But dup_mmap() calls anon_vma_fork() before it sets ``tmp->vm_prev``:
the byte copy still points at the *parent's* previous VMA, so ``prev == pprev`` and the child
takes the parent VMA's own anon_vma whenever the parent's previous VMA (DONTCOPY or not) shares
it.  The tree stays valid (that anon_vma is in the copied chain), just not what was meant
(Konstantin Khlebnikov, <157839239609.694.10268055713935919822.stgit@buzz>).
"""
from __future__ import annotations

from typing import ClassVar

from ..kernel.fork import ForkContext
from ..kernel.objects import Vma
from ..kernel.state import Kernel
from .base import VmaOp
from .degree import Degree
from .base import mypyc_attr   # (compiled: Python subclasses allowed)


@mypyc_attr(allow_interpreted_subclasses=True)
class Wei4e4a9eb92133(Degree):
    name = "wei-4e4a9eb92133"
    aliases: ClassVar[tuple[str, ...]] = ("v5.5",)
    versions = "v5.5-rc1 .. v5.5 (+ v5.6-rc1/rc2, until the revert)"
    cite = 'commit 4e4a9eb92133 ("mm/rmap.c: reuse mergeable anon_vma as parent when fork")'
    rule = "if the parent's vm_prev shares the parent VMA's anon_vma A, the child uses A itself; else degree"
    src_guard = True

    def child_prev(self, k: Kernel, ctx: ForkContext) -> Vma | None:
        """``dst->vm_prev`` as anon_vma_clone() reads it: the byte-copied parent neighbour."""
        if self.trace:
            self.trace.why("dst->vm_prev is still the byte copy's: the parent's %s", ctx.vm_prev)
        return ctx.vm_prev

    def anon_vma_clone(self, k: Kernel, dst: Vma, src: Vma, op: VmaOp,
                       ctx: ForkContext | None = None) -> None:
        # At split, copy and merge dst->anon_vma is already set: only fork reaches this.
        if ctx is not None and dst.anon_vma is None and src.anon_vma is not None:
            pprev = ctx.pvma_prev
            if pprev is not None and pprev.anon_vma is src.anon_vma:
                prev = self.child_prev(k, ctx)
                dst.anon_vma = prev.anon_vma  # type: ignore[union-attr]
                if self.trace:
                    self.trace.why("pprev %s shares src->anon_vma %s -> dst->anon_vma = "
                                   "prev->anon_vma (%s of %s)", pprev, src.anon_vma,
                                   prev.anon_vma, prev)  # type: ignore[union-attr]
            elif self.trace:
                if pprev is None:
                    self.trace.why("pprev NULL -> prologue not taken")
                else:
                    self.trace.why("pprev %s uses %s, not src->anon_vma %s -> prologue not taken",
                                   pprev, pprev.anon_vma, src.anon_vma)
        elif self.trace:
            self.trace.why("prologue not taken: %s", "not a fork" if ctx is None else
                           "dst->anon_vma set" if dst.anon_vma is not None else
                           "src->anon_vma NULL")
        super().anon_vma_clone(k, dst, src, op, ctx)
