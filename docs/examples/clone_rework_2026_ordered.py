"""``clone-rework-2026-ordered``: an example user policy (hypothetical; no kernel has it).

Lorenzo Stoakes's 2026 rework of anon_vma_clone() ("[PATCH v3 0/9] mm: clean up anon_vma
implementation", 2026-01-18; mm/rmap.c @ 0014dde7e945 in the linux-mm tree) allocates the
destination's chains walking the source chain **head to tail** and pushes each at the head, so
every clone reverses the chain (spec section 8, Observation O-1), and the reuse pass at fork
then takes the first eligible entry of the source chain head first.

This variant walks the source chain **tail to head** instead, as anon_vma_clone() did from
v2.6.34 to 6.x: the destination's chain comes out in the source's order, the reuse pass sees the
root first, and the reuse predicate is unchanged (no active VMA, fewer than two children).  The
spec says it "would match split-counters exactly"; tests/test_stateful.py checks that on random
sequences.

Use it by path wherever a policy name is expected::

    anondiff run scenarios/kernel-runs/check4_o1_five_generations.yaml \\
        --policy split-counters --policy docs/examples/clone_rework_2026_ordered.py

A policy file defines exactly one Policy subclass with a ``name``; here it overrides only the
decision that differs (the order of the chain walk), everything else is inherited.
"""
from __future__ import annotations

from anondiff.kernel.fork import ForkContext
from anondiff.kernel.objects import Vma
from anondiff.kernel.rmap import anon_vma_chain_assign, interval_tree_insert
from anondiff.kernel.state import Kernel
from anondiff.policies.base import VmaOp
from anondiff.policies.clone_rework_2026 import CloneRework2026


class CloneRework2026Ordered(CloneRework2026):
    name = "clone-rework-2026-ordered"
    aliases = ()                 # not the v7.0 alias of the class it extends
    versions = "none (hypothetical: the 2026 code with the pre-rework chain order)"
    cite = ('Lorenzo Stoakes, "[PATCH v3 0/9] mm: clean up anon_vma implementation" (2026), '
            "with anon_vma_clone() walking the source chain tail to head")
    rule = ("as clone-rework-2026, but clones keep the source chain's order: the oldest eligible "
            "entry is reused, as split-counters does")

    def anon_vma_clone(self, k: Kernel, dst: Vma, src: Vma, op: VmaOp,
                       ctx: ForkContext | None = None) -> None:
        self.check_anon_vma_clone(k, dst, src, op)
        if src.anon_vma is None:
            return
        # Tail (root) to head, each pushed at dst's head: dst's chain has src's order.
        # (``src.avcs`` is stored tail first; see Vma.avcs.)  Each chain is an allocation that
        # a step's ``enomem: N`` can fail (Kernel.anon_vma_chain_alloc_fails()): then, as in the
        # 2026 code, cleanup_partial_anon_vmas() frees the chains allocated so far.
        for pavc in list(src.avcs):
            if k.fail_nth and k.anon_vma_chain_alloc_fails("anon_vma_clone"):
                self.cleanup_partial_anon_vmas(k, dst)
                raise k.enomem()
            anon_vma_chain_assign(k, dst, pavc.anon_vma)
        for avc in list(dst.avcs):                    # dst tail to head: root first
            interval_tree_insert(k, avc)
            if op is VmaOp.FORK:
                self.maybe_reuse_anon_vma(k, dst, avc.anon_vma)
        if op is not VmaOp.FORK and dst.anon_vma is not None:
            k.counters.vma_attached(dst.anon_vma)
