"""``split-counters``: commit 2555283eb40d ("mm/rmap: Fix anon_vma->degree ambiguity leading to
double-reuse") (Jann Horn, v6.0-rc4; CVE-2022-42703; backported to stable from 4.9 up), up to
the last release before the 2026 anon_vma rework: what the running 6.18.y kernel does.

``degree`` is split into ``num_children`` (live children + the root's self link) and
``num_active_vmas``; anon_vma_clone() at fork reuses the oldest entry of the parent's chain with
no VMA and fewer than two children.  The parent VMA's own anon_vma is never eligible: its VMA
counts as active.

dup_mmap is the maple-tree one (v6.1+; ``__mt_dup`` from v6.8): nothing prev-related reaches
anon_vma_fork(), and a VM_WIPEONFORK VMA stays without anon_vma (since v5.6, Li Xinhai's "mm:
don't prepare anon_vma if vma has VM_WIPEONFORK").  Merges use the three-case
is_mergeable_anon_vma() that the live 6.18.44 kernel was seen to follow (spec section 1.5), and
mprotect() clears VM_ACCOUNT of an unfaulted anonymous VMA made non-writable (v6.7, commit
9b9143298585 ("mm/mprotect: allow unfaulted VMAs to be unaccounted on mprotect()")).
"""
from __future__ import annotations

from typing import ClassVar

from ..kernel.fork import EMPTY, NONE, DupMmap
from ..kernel.objects import AnonVma, Vma
from .base import ChainCopyPolicy, SplitCounters, vma_is_fork_child
from .base import mypyc_attr   # (compiled: Python subclasses allowed)


@mypyc_attr(allow_interpreted_subclasses=True)
class SplitCountersPolicy(ChainCopyPolicy):
    name = "split-counters"
    aliases: ClassVar[tuple[str, ...]] = ("v6.18",)
    versions = "v6.0-rc4 .. the last release before the 2026 rework (the running 6.18.y); 4.9+ stable backports"
    cite = 'commit 2555283eb40d ("mm/rmap: Fix anon_vma->degree ambiguity leading to double-reuse")'
    rule = "reuse the oldest entry with num_active_vmas == 0 && num_children < 2, else a new child"
    counters = SplitCounters()
    dup_mmap = DupMmap(vm_prev=NONE, wipeonfork=EMPTY)
    merge_both_exports_next = True
    mprotect_unaccounts_unfaulted = True
    merge_nomem_fails = True
    #: the 6.12 merge code: a VMA with vm_ops->close is only never removed by a merge
    close_forbids = "removed"
    #: 6.17+: MREMAP_FIXED of the same size moves every VMA of the range (remap_move())
    mremap_moves_several = True

    def reusable(self, av: AnonVma, src: Vma) -> bool:
        ok = src.anon_vma is not None and av.num_children < 2 and av.num_active_vmas == 0
        if self.trace:
            _why_reuse(self, av, ok, src.anon_vma is None)
        return ok

    def is_mergeable_anon_vma(self, src: Vma | None, tgt: Vma, copied_from: Vma | None = None,
                              anon_vma: AnonVma | None = None) -> bool:
        """The three-case rule of mm/vma.c (the 2025 fix "mm/vma: fix incorrectly disallowed
        anonymous VMA merges"; with commit 61f67c230a5e ("mm/vma: fix anon_vma UAF on mremap()
        faulted, unfaulted merge") in 6.18.y), which the live 6.18.44 kernel follows.  A range
        mremap copies from a fork child does not merge into an unfaulted VMA (case 1 tests
        ``vmg->copied_from`` too)."""
        s, t = (src.anon_vma if src is not None else anon_vma), tgt.anon_vma
        if t is None and s is not None:       # case 1: tgt imports src's anon_vma
            ok = not vma_is_fork_child(src) and not vma_is_fork_child(copied_from)
            if self.trace:
                child = src if vma_is_fork_child(src) else copied_from
                self.trace.why("case 1, %s imports %s: source %s -> %s", tgt, s,
                               "not a fork child" if ok else "a fork child (chain of %d)"
                               % len(child.avcs), "merge" if ok else "refused")  # type: ignore[union-attr]
            return ok
        if t is not None and s is None:       # case 2: src simply uses tgt's
            ok = not vma_is_fork_child(tgt)
            if self.trace:
                self.trace.why("case 2, %s uses %s: target %s -> %s", src, t,
                               "not a fork child" if ok else "a fork child (chain of %d)"
                               % len(tgt.avcs), "merge" if ok else "refused")
            return ok
        if self.trace:
            self.trace.why("case 3: %s %s %s -> %s", s, "==" if s is t else "!=", t,
                           "merge" if s is t else "refused")
        return s is t                         # case 3: already shared (or both NULL)


def _why_reuse(policy: ChainCopyPolicy, av: AnonVma, ok: bool, src_unfaulted: bool) -> None:
    """The reuse predicate of commit 2555283eb40d, and which of its conditions failed."""
    assert policy.trace is not None
    if src_unfaulted:
        policy.trace.why("src->anon_vma is NULL: a copy, never a reuse")
        return
    failed = [what for what, bad in (("num_active_vmas != 0", av.num_active_vmas != 0),
                                     ("num_children >= 2", av.num_children >= 2)) if bad]
    policy.trace.why("%s has num_active_vmas %s and num_children %s -> %s", av,
                     av.num_active_vmas, av.num_children,
                     "reused" if ok else "not reused: " + " and ".join(failed))
