"""What the kernel model needs from whatever makes the anon_vma decisions.

A Python policy (:class:`anondiff.policies.base.Policy`) and a policy compiled from a kernel
source tree (:mod:`anondiff.ktree`) are two implementations of this one interface; the model
calls only these, so it never imports either of them.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .counters import NoCounters
    from .fork import DupMmap, ForkContext
    from .objects import AnonVma, Vma, VmaOp
    from .state import Kernel


class KernelOps(Protocol):
    name: str
    cite: str
    #: which of ``struct anon_vma``'s counters the era keeps
    counters: NoCounters
    #: what dup_mmap() presents to anon_vma_fork() (``vm_prev``) and does with VM_WIPEONFORK
    dup_mmap: DupMmap
    merge_both_exports_next: bool
    unlink_returns_if_unfaulted: bool
    #: v6.7+: mprotect() clears VM_ACCOUNT of an unfaulted anonymous VMA made non-writable
    mprotect_unaccounts_unfaulted: bool
    #: v6.12+: a merge whose anon_vma_clone() fails is -ENOMEM (before: no merge, go on)
    merge_nomem_fails: bool
    #: 2026: flags merges ignore and the merged VMA keeps (VMA_STICKY_FLAGS)
    sticky_flags: frozenset[str]
    #: "neighbour" (before v6.12) or "removed" (v6.12+): what vm_ops->close forbids in a merge
    close_forbids: str

    def anon_vma_clone(self, k: Kernel, dst: Vma, src: Vma, op: VmaOp,
                       ctx: ForkContext | None = None) -> None:
        """anon_vma_clone(dst, src[, op])."""

    def anon_vma_fork(self, k: Kernel, vma: Vma, pvma: Vma, ctx: ForkContext) -> None:
        """anon_vma_fork(vma, pvma), from dup_mmap()."""

    #: which VMAs mremap(MREMAP_DONTUNMAP) may move: None (before v5.7), "anon", "any"
    mremap_dontunmap: str | None

    def is_mergeable_anon_vma(self, src: Vma | None, tgt: Vma, copied_from: Vma | None = None,
                              anon_vma: AnonVma | None = None) -> bool:
        """May ``src``'s range merge into ``tgt`` as far as the anon_vmas go?  ``src`` is
        vmg->middle; None for a range mremap copies (``copied_from``) or an in-place growth,
        whose anon_vma is then ``anon_vma``."""

    def anon_vma_prepare(self, k: Kernel, vma: Vma, prev: Vma | None, next: Vma | None) -> None:
        """__anon_vma_prepare(vma) with the neighbours the era's lookup sees."""

    def find_mergeable_anon_vma(self, vma: Vma, prev: Vma | None,
                                next: Vma | None) -> AnonVma | None:
        """find_mergeable_anon_vma(vma)."""

    def unlink_anon_vmas(self, k: Kernel, vma: Vma) -> None:
        """unlink_anon_vmas(vma)."""

    def rekey(self, k: Kernel, vma: Vma) -> None:
        """anon_vma_interval_tree_pre_update_vma() + _post_update_vma(): vma's range changed."""

    def dup_anon_vma(self, k: Kernel, dst: Vma, src: Vma) -> None:
        """dup_anon_vma(): a merge where ``dst`` imports ``src``'s anon_vma."""

    def new_root_anon_vma(self, k: Kernel, label: str | None = None) -> AnonVma:
        """A root anon_vma for a faulted VMA of a starting layout (named ``label`` if given)."""

    def attach_anon_vma(self, k: Kernel, vma: Vma, av: AnonVma) -> None:
        """A starting layout's faulted VMA uses ``av``, as if __anon_vma_prepare() gave it."""
