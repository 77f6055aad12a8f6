"""``wei-intended``: what commit 4e4a9eb92133 ("mm/rmap.c: reuse mergeable anon_vma as parent
when fork") meant to do, had ``dst->vm_prev`` been the child's previous VMA.  Never shipped.

It shows the two problems hidden behind the shipped one (Konstantin Khlebnikov,
<157839239609.694.10268055713935919822.stgit@buzz>): when the parent's first VMA is
VM_DONTCOPY the parent has a vm_prev and the child has none, and ``prev->anon_vma`` dereferences
NULL (the real code crashes; the replay stops with a CRASH finding); and the anon_vma taken from
the child's previous VMA is not in the chain copied from the parent (invariant I2), so rmap
cannot find the pages it gets.
"""
from __future__ import annotations

from ..kernel.fork import CHILD, PREPARE, DupMmap, ForkContext
from ..kernel.objects import Vma
from ..kernel.rmap import ref
from ..kernel.state import Kernel, KernelCrash
from .wei_4e4a9eb92133 import Wei4e4a9eb92133
from .base import mypyc_attr   # (compiled: Python subclasses allowed)


@mypyc_attr(allow_interpreted_subclasses=True)
class WeiIntended(Wei4e4a9eb92133):
    name = "wei-intended"
    aliases = ()
    versions = "never shipped (hypothetical)"
    cite = 'commit 4e4a9eb92133 ("mm/rmap.c: reuse mergeable anon_vma as parent when fork"), as intended'
    rule = "share the child-prev's anon_vma if the parent's prev shares A; chain = copy of the parent's"
    dup_mmap = DupMmap(vm_prev=CHILD, wipeonfork=PREPARE)

    def child_prev(self, k: Kernel, ctx: ForkContext) -> Vma | None:
        if self.trace:
            self.trace.why("dst->vm_prev is the child's previous VMA: %s", ctx.vm_prev)
        if ctx.vm_prev is None:
            raise KernelCrash(
                f"NULL pointer dereference: prev->anon_vma in anon_vma_clone() "
                f"(the parent's {ref(ctx.pvma_prev)} has no copy before this VMA in the child)")  # type: ignore[arg-type]
        return ctx.vm_prev
