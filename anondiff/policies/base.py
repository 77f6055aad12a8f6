"""What a policy is: the decisions one kernel (or patch) version makes, and nothing else.

The shared machinery (linking, prepare, unlink, split, the fork loop) lives in
:mod:`anondiff.kernel`; a policy says which counters its era keeps, how its dup_mmap presents
``vm_prev`` and VM_WIPEONFORK, which merge rule it uses, and how anon_vma_clone() and
anon_vma_fork() choose.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from ..kernel.counters import DegreeCounters, NoCounters, SplitCounters
from ..kernel import merge, rmap
from ..kernel.fork import DupMmap, ForkContext
from ..kernel.objects import AnonVma, Mm, Vma, VmaOp
from ..kernel.rmap import (anon_vma_chain_link, anon_vma_fork_tail, drop_anon_vma,
                           new_child_anon_vma)
from ..kernel.state import Enomem, Kernel

try:
    from mypy_extensions import mypyc_attr
except ImportError:                  # no mypy (so nothing compiled): a no-op
    from .._compiled import mypyc_attr  # type: ignore[assignment]

if TYPE_CHECKING:
    from ..explain.core import Tracer

__all__ = ["Policy", "ChainCopyPolicy", "VmaOp", "DegreeCounters", "NoCounters", "SplitCounters"]


def vma_is_fork_child(vma: Vma | None) -> bool:
    """vma_is_fork_child(): has an anon_vma and a chain that is not singular."""
    return vma is not None and vma.anon_vma is not None and len(vma.avcs) != 1


def counts_allocations(policy: object) -> bool:
    """Do the allocation hooks of :class:`~anondiff.kernel.state.Kernel` (a step's ``enomem``)
    see every allocation ``policy`` makes?  Every policy's do: a Python policy runs the Python
    kernel's primitives, one compiled from a kernel tree (anondiff.ktree) counts its C slab's
    allocations into the same counter (shim/glue.c's kmem_cache_alloc()).  (A function, not a
    method: explain reports every public method call of a policy.)"""
    return isinstance(policy, Policy)


@mypyc_attr(allow_interpreted_subclasses=True)
class Policy:
    """One Python implementation of :class:`anondiff.kernel.ops.KernelOps`."""

    name: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    versions: ClassVar[str]
    cite: ClassVar[str]
    rule: ClassVar[str]
    counters: ClassVar[NoCounters]
    dup_mmap: ClassVar[DupMmap]
    #: vma_merge() of prev, middle and next: the 6.x rewrite imports next's anon_vma into prev
    #: before middle's; v4.19's __vma_adjust() takes middle's first.
    merge_both_exports_next: ClassVar[bool] = False
    #: 2026: unlink_anon_vmas() returns at once for a VMA without anon_vma
    unlink_returns_if_unfaulted: ClassVar[bool] = False
    #: which VMAs mremap(MREMAP_DONTUNMAP) may move: None before v5.7 (no such flag), "anon"
    #: (private anonymous only) until v5.13, then "any" (see anondiff.kernel.mremap)
    mremap_dontunmap: ClassVar[str | None] = "any"
    #: v6.7+: mprotect() making an anonymous VMA without anon_vma non-writable clears VM_ACCOUNT
    #: (commit 9b9143298585, see anondiff.kernel.mm.mprotect_flags)
    mprotect_unaccounts_unfaulted: ClassVar[bool] = False
    #: v6.12+: a merge whose anon_vma_clone() fails makes mprotect()/madvise() fail with
    #: -ENOMEM (VMA_MERGE_ERROR_NOMEM); before, vma_merge() returned NULL and the caller split
    #: (see anondiff.kernel.merge.dup_or_give_up)
    merge_nomem_fails: ClassVar[bool] = False
    #: v6.17+ (remap_move(), mm/mremap.c): mremap(MREMAP_FIXED) of the same size may span
    #: several VMAs, each moved in turn and the gaps kept; before, -EFAULT
    mremap_moves_several: ClassVar[bool] = False
    #: v5.16 .. v6.15: sys_mremap() looks the old VMA up (-EFAULT) before mremap_to() checks the
    #: destination (-EINVAL for an overlap or one past TASK_SIZE); before (vma_to_resize() did
    #: the lookup) and from the vma_remap_struct rework (check_mremap_params()), the
    #: destination is checked first.  In every era the destination is checked before the old
    #: range's end and VM_DONTEXPAND (see anondiff.kernel.mremap.mremap)
    mremap_finds_vma_first: ClassVar[bool] = False
    #: VMA_STICKY_FLAGS (2026 tree): flags a merge ignores and the merged VMA keeps (the union
    #: over every VMA merged); before, only VM_SOFTDIRTY is ignored and the merged VMA takes the
    #: flags the operation sets (see anondiff.kernel.merge.merged_flags)
    sticky_flags: ClassVar[frozenset[str]] = frozenset()
    #: what a VMA with vm_ops->close forbids: "neighbour" (before v6.12: any merge with it) or
    #: "removed" (v6.12+: only its removal), see anondiff.kernel.merge
    close_forbids: ClassVar[str] = "neighbour"
    #: ``anondiff explain`` only: where a rule reports why it decided (``if self.trace:
    #: self.trace.why(...)``); None otherwise, so a replay pays one attribute test.
    trace: Tracer | None = None

    def anon_vma_clone(self, k: Kernel, dst: Vma, src: Vma, op: VmaOp,
                       ctx: ForkContext | None = None) -> None:
        raise NotImplementedError

    def is_mergeable_anon_vma(self, src: Vma | None, tgt: Vma, copied_from: Vma | None = None,
                              anon_vma: AnonVma | None = None) -> bool:
        """May ``src``'s range (anon_vma ``src.anon_vma``) merge into ``tgt``?

        ``src`` is ``vmg->middle``; for a range that is not an existing VMA (mremap's copy, an
        in-place growth) it is None and ``anon_vma`` is the range's (``vmg->anon_vma``), with
        ``copied_from`` the VMA mremap copies (``vmg->copied_from``, 2025+).

        commit 965f55dea0e3 ("mmap: avoid merging cloned VMAs") up to the 2025 fix: with one
        anon_vma NULL only if the target's chain is singular (an unfaulted target's empty chain
        is not), else equal pointers.  Chains are never compared: CVE-2022-42703 rests on it.
        """
        a1, a2 = (src.anon_vma if src is not None else anon_vma), tgt.anon_vma
        if (a1 is None or a2 is None) and len(tgt.avcs) == 1:
            if self.trace:
                self.trace.why("%s is NULL and %s's chain is singular -> merge",
                               "tgt->anon_vma" if a1 is not None else "src->anon_vma", tgt,
                               cite="commit 965f55dea0e3")
            return True
        if self.trace:
            if a1 is None and a2 is None:
                self.trace.why("both anon_vmas NULL -> merge", cite="commit 965f55dea0e3")
            elif a1 is None or a2 is None:
                self.trace.why("one anon_vma is NULL but %s's chain has %s entries, not 1 "
                               "-> refused", tgt, len(tgt.avcs), cite="commit 965f55dea0e3")
            else:
                self.trace.why("%s %s %s -> %s", a1, "==" if a1 is a2 else "!=", a2,
                               "merge" if a1 is a2 else "refused", cite="commit 965f55dea0e3")
        return a1 is a2

    def anon_vma_fork(self, k: Kernel, vma: Vma, pvma: Vma, ctx: ForkContext) -> None:
        raise NotImplementedError

    def _own_dup_mmap(self, k: Kernel, parent: Mm, child: Mm,
                      rename: dict[str, str] | None) -> bool:
        """Did the policy run all of dup_mmap() itself (a compiled tree, anondiff.ktree.policy:
        its anon_vma_fork() calls in one call into C)?  False: the model's loop
        (:func:`anondiff.kernel.fork.dup_mmap`) calls :meth:`anon_vma_fork` for each VMA.
        (A method every policy has, so that the loop need not look for one: a failed
        ``getattr()`` raises and catches AttributeError on every fork.)"""
        return False

    # The primitives every Python policy shares (anondiff.kernel); a policy compiled from a
    # kernel tree (anondiff.ktree) supplies its own.
    def anon_vma_prepare(self, k: Kernel, vma: Vma, prev: Vma | None, next: Vma | None) -> None:
        rmap.anon_vma_prepare(k, vma, prev, next)

    def find_mergeable_anon_vma(self, vma: Vma, prev: Vma | None,
                                next: Vma | None) -> AnonVma | None:
        return rmap.find_mergeable_anon_vma(vma, prev, next)

    def unlink_anon_vmas(self, k: Kernel, vma: Vma) -> None:
        rmap.unlink_anon_vmas(k, vma)

    def rekey(self, k: Kernel, vma: Vma) -> None:
        rmap.rekey(k, vma)

    def dup_anon_vma(self, k: Kernel, dst: Vma, src: Vma) -> None:
        merge.dup_anon_vma(k, dst, src)

    def new_root_anon_vma(self, k: Kernel, label: str | None = None) -> AnonVma:
        return rmap.new_root_anon_vma(k, label)

    def attach_anon_vma(self, k: Kernel, vma: Vma, av: AnonVma) -> None:
        rmap.attach_anon_vma(k, vma, av)


@mypyc_attr(allow_interpreted_subclasses=True)
class ChainCopyPolicy(Policy):
    """anon_vma_clone()/anon_vma_fork() as in every release from v2.6.34 to the 6.x series.

    anon_vma_clone() walks the source chain from the tail (root first), links each anon_vma at the
    head of dst's chain, so dst's chain comes out in the source's order, and on the way may pick
    the first (= oldest) entry :meth:`reusable` accepts as ``dst->anon_vma``.
    """

    def reusable(self, av: AnonVma, src: Vma) -> bool:
        if self.trace:
            self.trace.why("no anon_vma is ever reused before commit 7a3ef208e662")
        return False

    def anon_vma_clone(self, k: Kernel, dst: Vma, src: Vma, op: VmaOp,
                       ctx: ForkContext | None = None) -> None:
        preset = dst.anon_vma
        armed = k.fail_nth
        for pavc in src.avcs:            # tail (root) first; dst is never src
            if armed and k.anon_vma_chain_alloc_fails("anon_vma_clone"):
                if self.trace:
                    self.trace.why("anon_vma_chain_alloc() fails: enomem_failure")
                self.clone_failed(k, dst)
            av = pavc.anon_vma
            anon_vma_chain_link(k, dst, av)
            if dst.anon_vma is None and self.reusable(av, src):
                dst.anon_vma = av
        if dst.anon_vma is not None:
            k.counters.vma_attached(dst.anon_vma)
        if self.trace:
            if preset is not None:
                self.trace.why("dst->anon_vma already %s: %s's chain linked, root first, "
                               "no reuse", preset, src)
            elif dst.anon_vma is not None:
                self.trace.why("%s's chain linked root first; %s is the first entry "
                               "reusable() accepts", src, dst.anon_vma)
            else:
                self.trace.why("%s's chain linked root first; no entry reusable", src)

    def clone_failed(self, k: Kernel, dst: Vma) -> None:
        """anon_vma_clone()'s enomem_failure before 2026 (mm/rmap.c@v6.12.117; the same since
        v3.19, and since v2.6.34 without the first line)::

            dst->anon_vma = NULL;
            unlink_anon_vmas(dst);
            return -ENOMEM;

        The chains linked so far are in the interval trees: unlink_anon_vmas() takes them out
        (it does not return early for a VMA without anon_vma before 2026).  Dropping
        dst->anon_vma first keeps a reused (or preset) anon_vma's counters from being
        decremented for an increment that never happened."""
        if self.trace:
            self.trace.why("anon_vma_chain_alloc() fails after %s chains: dst->anon_vma = "
                           "NULL, unlink_anon_vmas(dst)", len(dst.avcs))
        dst.anon_vma = None
        self.unlink_anon_vmas(k, dst)
        raise k.enomem()

    def _fork_clone(self, k: Kernel, vma: Vma, src: Vma, ctx: ForkContext) -> None:
        """anon_vma_fork()'s ``error = anon_vma_clone(vma, src); if (error) return error;``"""
        try:
            self.anon_vma_clone(k, vma, src, VmaOp.FORK, ctx)
        except Enomem:
            if self.trace:
                self.trace.why("anon_vma_clone() failed: anon_vma_fork() returns -ENOMEM")
            raise

    def anon_vma_fork(self, k: Kernel, vma: Vma, pvma: Vma, ctx: ForkContext) -> None:
        if pvma.anon_vma is None:
            if self.trace:
                self.trace.why("pvma->anon_vma is NULL: nothing to share")
            return
        drop_anon_vma(vma)           # drop the pointer the byte copy inherited
        try:                         # (_fork_clone() inline: the hot path of a fork)
            self.anon_vma_clone(k, vma, pvma, VmaOp.FORK, ctx)
        except Enomem:
            if self.trace:
                self.trace.why("anon_vma_clone() failed: anon_vma_fork() returns -ENOMEM")
            raise
        if vma.anon_vma is not None:  # reused an ancestor
            if self.trace:
                self.trace.why("anon_vma_clone() set %s -> no new anon_vma", vma.anon_vma)
            return
        if self.trace:
            self.trace.why("nothing reused -> a new anon_vma, child of pvma->anon_vma %s",
                           pvma.anon_vma)
        if k.fail_nth:
            anon_vma_fork_tail(k, vma, pvma.anon_vma)
        else:                           # (the hot path of a fork: no extra call)
            new_child_anon_vma(k, vma, pvma.anon_vma)
