"""``clone-rework-2026``: Lorenzo Stoakes, "[PATCH v3 0/9] mm: clean up anon_vma
implementation" (2026-01-18), as read in the linux-mm tree (mm/rmap.c @ 0014dde7e945,
mm/vma.c @ 009857a22860; reportedly v7.0, unverified).

anon_vma_clone() gains ``enum vma_operation``.  It first allocates one chain per entry of the
source chain walking it **head to tail** and pushing each at the head of dst's chain, so dst's
chain is the *reverse* of src's; then it walks dst's chain tail to head inserting into the
interval trees and, at fork only, reuses the first anon_vma with no active VMA and fewer than
two children (maybe_reuse_anon_vma).  Every clone reverses, splits included, so the reuse scan
order after two generations is neither nearest nor oldest first (spec Observation O-1).
anon_vma_fork() preallocates its anon_vma and frees it unused when a reuse happened.
unlink_anon_vmas() returns at once for a VMA without anon_vma.
"""
from __future__ import annotations

from ..kernel.fork import ForkContext
from ..kernel.objects import AnonVma, Vma
from ..kernel.rmap import (anon_vma_chain_assign, drop_anon_vma, interval_tree_insert,
                           new_child_anon_vma)
from ..kernel.state import Enomem, Kernel
from .base import VmaOp
from .split_counters import SplitCountersPolicy, _why_reuse
from .base import mypyc_attr   # (compiled: Python subclasses allowed)


@mypyc_attr(allow_interpreted_subclasses=True)
class CloneRework2026(SplitCountersPolicy):
    name = "clone-rework-2026"
    aliases = ("v7.0",)
    versions = "2026 mm tree (reportedly v7.0)"
    cite = 'Lorenzo Stoakes, "[PATCH v3 0/9] mm: clean up anon_vma implementation" (2026)'
    rule = "same predicate as split-counters, but each clone reverses the chain: the first eligible entry of the parent's chain, head first, is reused"
    unlink_returns_if_unfaulted = True
    #: VMA_STICKY_FLAGS (include/linux/mm.h@7.2.13): ignored by merges, kept by the merged VMA
    sticky_flags = frozenset({"softdirty", "guard"})

    def check_anon_vma_clone(self, k: Kernel, dst: Vma, src: Vma, op: VmaOp) -> None:
        """The VM_WARN_ON_ONCE()s of check_anon_vma_clone() that the model can see."""
        warn = []
        if src.anon_vma is None and (src.avcs or dst.anon_vma is not None):
            warn.append("src without anon_vma has a chain or dst has an anon_vma")
        if dst.avcs:
            warn.append("dst chain not empty on entry")
        if dst.anon_vma is not None and dst.anon_vma is not src.anon_vma:
            warn.append("dst->anon_vma neither NULL nor src's")
        if op is not VmaOp.FORK and src.anon_vma is not None and dst.anon_vma is None:
            warn.append("dst->anon_vma not set for a non-fork clone")
        if op is VmaOp.MERGE_UNFAULTED and len(src.avcs) != 1:
            warn.append("merge of an unfaulted VMA from a non-singular chain")
        for w in warn:
            k.event("VM_WARN_ON_ONCE", dst, f"check_anon_vma_clone: {w}")
        if self.trace:
            self.trace.why("%s", "%d VM_WARN_ON_ONCE fire" % len(warn) if warn else
                           "no VM_WARN_ON_ONCE fires (dst chain empty, dst->anon_vma NULL or "
                           "src's)")

    def anon_vma_clone(self, k: Kernel, dst: Vma, src: Vma, op: VmaOp,
                       ctx: ForkContext | None = None) -> None:
        self.check_anon_vma_clone(k, dst, src, op)
        if src.anon_vma is None:
            if self.trace:
                self.trace.why("src->anon_vma is NULL: nothing to clone")
            return
        armed = k.fail_nth
        for pavc in src.same_vma():                   # head to tail, each pushed at the head
            if armed and k.anon_vma_chain_alloc_fails("anon_vma_clone"):
                if self.trace:
                    self.trace.why("anon_vma_chain_alloc() fails: enomem_failure")
                self.cleanup_partial_anon_vmas(k, dst)
                raise k.enomem()
            anon_vma_chain_assign(k, dst, pavc.anon_vma)
        for avc in list(dst.avcs):                    # tail to head
            interval_tree_insert(k, avc)
            if op is VmaOp.FORK:
                self.maybe_reuse_anon_vma(k, dst, avc.anon_vma)
        if op is not VmaOp.FORK and dst.anon_vma is not None:
            k.counters.vma_attached(dst.anon_vma)
        if self.trace:
            self.trace.why("%s's chain copied head to tail, each pushed at the head "
                           "(reversed)%s", src,
                           "; reuse tried from the tail" if op is VmaOp.FORK else
                           "; %s: no reuse" % op.name)

    def cleanup_partial_anon_vmas(self, k: Kernel, vma: Vma) -> None:
        """cleanup_partial_anon_vmas() (mm/rmap.c@7.2.13): anon_vma_clone() allocates every
        chain before it inserts any into an interval tree, so on failure the chains are only
        taken off the VMA's list and freed, and ``vma->anon_vma`` is reset.  (unlink_anon_vmas()
        would not do: it returns at once for a VMA without anon_vma, leaking the chains.)"""
        if self.trace:
            self.trace.why("anon_vma_chain_alloc() fails after %s chains: "
                           "cleanup_partial_anon_vmas() frees them (none is in a tree yet), "
                           "vma->anon_vma = NULL", len(vma.avcs))
        vma.avcs.clear()
        vma.anon_vma = None
        k.dirty_vmas.add(vma)

    def maybe_reuse_anon_vma(self, k: Kernel, dst: Vma, av: AnonVma) -> None:
        if dst.anon_vma is not None:
            if self.trace:
                self.trace.why("dst->anon_vma already %s", dst.anon_vma)
            return
        if av.num_active_vmas > 0 or av.num_children > 1:
            if self.trace:
                _why_reuse(self, av, False, False)
            return
        if self.trace:
            _why_reuse(self, av, True, False)
        dst.anon_vma = av
        k.counters.vma_attached(av)

    def anon_vma_fork(self, k: Kernel, vma: Vma, pvma: Vma, ctx: ForkContext) -> None:
        if pvma.anon_vma is None:
            if self.trace:
                self.trace.why("pvma->anon_vma is NULL: nothing to share")
            return
        drop_anon_vma(vma)
        # anon_vma_fork() (mm/rmap.c@7.2.13): the anon_vma and its chain are allocated first;
        # whatever fails, the preallocated anon_vma is put unused and -ENOMEM returned
        if k.fail_nth:
            if k.anon_vma_alloc_fails("anon_vma_fork"):
                if self.trace:
                    self.trace.why("anon_vma_alloc() fails: return -ENOMEM")
                raise k.enomem()
            if k.anon_vma_chain_alloc_fails("anon_vma_fork"):
                if self.trace:
                    self.trace.why("anon_vma_chain_alloc() fails: put_anon_vma() of the "
                                   "preallocated anon_vma, return -ENOMEM")
                k.transient_anon_vmas += 1            # put_anon_vma(anon_vma)
                raise k.enomem()
            try:
                self.anon_vma_clone(k, vma, pvma, VmaOp.FORK, ctx)
            except Enomem:
                if self.trace:
                    self.trace.why("anon_vma_clone() failed: put_anon_vma() of the "
                                   "preallocated anon_vma, return -ENOMEM")
                k.transient_anon_vmas += 1            # rc != 0: put_anon_vma(anon_vma)
                raise
        else:
            self.anon_vma_clone(k, vma, pvma, VmaOp.FORK, ctx)
        if vma.anon_vma is not None:
            if self.trace:
                self.trace.why("anon_vma_clone() reused %s -> the preallocated anon_vma is "
                               "freed unused", vma.anon_vma)
            k.transient_anon_vmas += 1                # the preallocated anon_vma, freed unused
            return
        if self.trace:
            self.trace.why("nothing reused -> the preallocated anon_vma, child of "
                           "pvma->anon_vma %s", pvma.anon_vma)
        new_child_anon_vma(k, vma, pvma.anon_vma)
