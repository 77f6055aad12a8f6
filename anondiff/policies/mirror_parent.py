"""``mirror-parent``: no kernel; what Wei Yang wished for in the seed thread (Jan 10 2020,
<20200110053442.GA27846@richard>): "make child has the same topology as parent".

Child VMAs share anon_vmas exactly where their parent VMAs share theirs: the first child VMA of
each parent sharing group gets one new anon_vma (child of the parent's, chain ``[new] +
parent's chain``, no reuse of old anon_vmas); every later VMA of the group shares it, with a copy
of that first VMA's chain, so it is properly linked (unlike ``v1``).  Counters and everything
else as ``split-counters``.  Nothing bounds the depth, as before v3.19.
"""
from __future__ import annotations

from ..kernel.fork import ForkContext
from ..kernel.objects import AnonVma, Vma
from ..kernel.state import Kernel
from .base import VmaOp
from .split_counters import SplitCountersPolicy
from .base import mypyc_attr   # (compiled: Python subclasses allowed)


@mypyc_attr(allow_interpreted_subclasses=True)
class MirrorParent(SplitCountersPolicy):
    name = "mirror-parent"
    aliases = ()
    versions = "none (hypothetical)"
    cite = 'Wei Yang\'s wish, <20200110053442.GA27846@richard>'
    rule = "one new anon_vma per parent sharing group, shared by the whole group, chains copied from its first VMA"

    def reusable(self, av: AnonVma, src: Vma) -> bool:
        if self.trace:
            self.trace.why("mirror-parent never reuses an old anon_vma")
        return False

    def anon_vma_fork(self, k: Kernel, vma: Vma, pvma: Vma, ctx: ForkContext) -> None:
        if pvma.anon_vma is None:
            if self.trace:
                self.trace.why("pvma->anon_vma is NULL: nothing to share")
            return
        first: Vma | None = ctx.scratch.get(pvma.anon_vma)
        if first is not None:
            if self.trace:
                self.trace.why("%s, first of the group sharing %s in the parent, has %s -> "
                               "share it, clone its chain", first, pvma.anon_vma,
                               first.anon_vma)
            vma.anon_vma = first.anon_vma
            self._fork_clone(k, vma, first, ctx)
            return
        if self.trace:
            self.trace.why("first child VMA of the group sharing %s", pvma.anon_vma)
        super().anon_vma_fork(k, vma, pvma, ctx)
        ctx.scratch[pvma.anon_vma] = vma
