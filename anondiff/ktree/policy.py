"""``KernelTreePolicy``: a policy whose every anon_vma decision is the tree's own C code.

Python keeps the mm (VMA list, geometry, pages, the dup_mmap loop, naming); the hooks of
:class:`anondiff.kernel.ops.KernelOps` call the compiled tree through :mod:`.binding`.  The
era's surroundings that the Python model needs come from what the cut contains, never from a
version number: the counters class from ``struct anon_vma``'s fields, dup_mmap's behaviour
(what ``tmp->vm_prev`` holds when anon_vma_fork() runs, what a VM_WIPEONFORK VMA gets) from the
tree's own dup_mmap() and vm_area_dup() (:func:`recipe.fork_rules`), and the merge and mremap
rules from its mm (:func:`recipe.merge_rules`).
"""
from __future__ import annotations

import sys

from ..kernel.counters import DegreeCounters, NoCounters, SplitCounters
from ..kernel.fork import EMPTY, NONE, ForkContext, children_take
from ..kernel.objects import AnonVma, Mm, Vma, VmaOp
from ..kernel.rmap import ref
from ..kernel.state import Kernel, KernelCrash
from ..policies.base import Policy
from . import binding, build, readback, recipe
from .source import TreeSpec, open_tree


class KernelTreePolicy(Policy):
    """A kernel source tree (+ patches), compiled: see :mod:`anondiff.ktree`."""

    def __init__(self, tree: build.TreeLike, built: build.Built) -> None:
        feats = built.features
        self.tree = tree
        self.rename(tree.name)
        self.aliases = ()                                       # type: ignore[misc]
        self.rule = "whatever the tree's C code decides"       # type: ignore[misc]
        counters: NoCounters = SplitCounters() if feats.split_counters else DegreeCounters()
        self.counters = counters                                # type: ignore[misc]
        # dup_mmap() of the tree's kernel/fork.c (mm/mmap.c in 7.x): v5.6+ NONE/EMPTY
        try:
            self.dup_mmap = recipe.fork_rules(tree.read, feats.maple)  # type: ignore[misc]
        except recipe.TreeUnsupported as e:
            raise build.UnsupportedTreeError(f"tree {tree.name}: {e}") from None
        self.mprotect_unaccounts_unfaulted = feats.mprotect_unaccounts  # type: ignore[misc]
        # the merge rules of soft-dirty, the guard marker and vm_ops->close, which anon_vma
        # a three-way merge imports first, and mremap's, from the tree's own mm.h / vma.c /
        # mmap.c / mremap.c (recipe.merge_rules)
        rules = recipe.merge_rules(tree.read)
        self.merge_both_exports_next = rules.merge_both_exports_next  # type: ignore[misc]
        self.mremap_dontunmap = rules.mremap_dontunmap          # type: ignore[misc]
        self.sticky_flags = rules.sticky_flags                  # type: ignore[misc]
        self.close_forbids = rules.close_forbids                # type: ignore[misc]
        self.merge_nomem_fails = rules.merge_nomem_fails        # type: ignore[misc]
        self.mremap_moves_several = rules.mremap_moves_several  # type: ignore[misc]
        self.mremap_finds_vma_first = rules.mremap_finds_vma_first  # type: ignore[misc]
        self.features = feats
        self.library = binding.Library(built.library)
        self._b: binding.Binding | None = None

    def rename(self, name: str) -> None:
        """Show the tree as ``name`` (when another policy of one command has the same name:
        :func:`anondiff.policies.distinct_names`)."""
        self.name = name                                        # type: ignore[misc]
        self.versions = f"kernel tree {name}"                   # type: ignore[misc]
        self.cite = f"the anon_vma code of {name}, compiled"    # type: ignore[misc]

    def _bind(self, k: Kernel) -> binding.Binding:
        b = self._b
        if b is not None and b.k is None:
            b.adopt(k)
        elif b is None or b.k is not k:    # a new replay: a fresh C kernel
            b = self._b = binding.Binding(self.library, k, self.counters)
        return b

    # -- the hooks ------------------------------------------------------------------------
    def anon_vma_prepare(self, k: Kernel, vma: Vma, prev: Vma | None, next: Vma | None) -> None:
        if vma.anon_vma is not None:        # anon_vma_prepare(), the inline
            return
        window = [v for v in (prev, vma, next) if v is not None]
        self._bind(k).call(binding.PREPARE, window, window=window.index(vma))

    def find_mergeable_anon_vma(self, vma: Vma, prev: Vma | None,
                                next: Vma | None) -> AnonVma | None:
        b = self._b
        if b is None or not b.serves(vma):
            b = self._b = binding.Binding(self.library, None, self.counters)
        window = [v for v in (prev, vma, next) if v is not None]
        found = b.call(binding.FIND, window, window=window.index(vma))
        return b.av_get(found) if found else None

    def anon_vma_fork(self, k: Kernel, vma: Vma, pvma: Vma, ctx: ForkContext) -> None:
        self._bind(k).fork(vma, pvma)

    def _own_dup_mmap(self, k: Kernel, parent: Mm, child: Mm,
                      rename: dict[str, str] | None) -> bool:
        """dup_mmap() with all its anon_vma_fork() calls in one call into C (one per VMA costs
        more in ctypes and readback than the Python policies' whole fork): the loop of
        :func:`anondiff.kernel.fork.dup_mmap` for this era (no ``vm_prev``, a VM_WIPEONFORK VMA
        left empty), in two passes: the child's VMAs and the forks, then the child's list and
        pages. A crash stops where the loop would have: the VMAs before it copied, it not.
        False (the model's loop, one anon_vma_fork() hook call per VMA) under explain, which
        observes each call, and in a step with ``enomem``, whose failure stops the loop."""
        if self.trace is not None or k.fail_nth:
            return False    # (an armed ``enomem`` step: each anon_vma_fork() may fail)
        if self.dup_mmap != (NONE, EMPTY):
            return False    # a tree before v5.6: the model's loop passes vm_prev and prepares
        # vm_area_dup() of each VMA copied; each copy's anon_vma is what anon_vma_fork() leaves
        # there (read back); the parents' words for C made in the same pass
        b = self._bind(k)
        copies, tmps, wipes, children, parents, columns = b.dup_fork(parent, child, rename)
        crashed: KernelCrash | None = None
        stop: Vma | None = None
        if parents:
            try:
                b.fork_all(children, parents, columns)
            except KernelCrash as crash:
                crashed, stop = crash, children[crash.pair]  # type: ignore[attr-defined]
        if crashed is not None:
            i = tmps.index(stop)
            children_take(parent, child, tmps[:i], copies[:i], wipes[:i])
            crashed.where = ref(stop)
            raise crashed
        children_take(parent, child, tmps, copies, wipes)
        return True

    def anon_vma_clone(self, k: Kernel, dst: Vma, src: Vma, op: VmaOp,
                       ctx: ForkContext | None = None) -> None:
        self._bind(k).call(binding.CLONE, [dst, src], binding.VMA_OPS[op])

    def unlink_anon_vmas(self, k: Kernel, vma: Vma) -> None:
        b = self._bind(k)
        if not b.vma_number(vma) and vma.anon_vma is None:
            return          # never seen by C: an unfaulted VMA with an empty chain
        b.call(binding.UNLINK, [vma])

    def anon_vma_merge(self, k: Kernel, kept: Vma, gone: Vma) -> bool:
        """vma_merge() removes ``gone``, which had an anon_vma, into ``kept``: the tree's own
        anon_vma_merge() (its VM_BUG_ON_VMA on different anon_vmas, then unlink_anon_vmas())
        where the tree has one (up to 6.x, called from __vma_adjust()/vma_complete() only
        when the removed VMA has an anon_vma). False leaves it to the model (7.x trees, where
        vma_complete() calls unlink_anon_vmas() itself, and unfaulted VMAs)."""
        if not self.features.anon_vma_merge or gone.anon_vma is None:
            return False
        self._bind(k).call(binding.ANON_VMA_MERGE, [kept, gone])
        return True

    def rekey(self, k: Kernel, vma: Vma) -> None:
        b = self._bind(k)
        if b.vma_number(vma):
            b.call(binding.REKEY, [vma])

    def dup_anon_vma(self, k: Kernel, dst: Vma, src: Vma) -> None:
        self._bind(k).call(binding.DUP_ANON_VMA, [dst, src])

    def is_mergeable_anon_vma(self, src: Vma | None, tgt: Vma, copied_from: Vma | None = None,
                              anon_vma: AnonVma | None = None) -> bool:
        if src is None:
            # A range with no middle VMA (mremap's copy, an in-place growth): the shim passes a
            # VMA as vmg->middle, so stand in the copied-from VMA (exact: the 2025 rule tests
            # vma_is_fork_child() of both), else a VMA holding the range's anon_vma (exact for
            # the pointer rule; the 2025 rule would not test it when it is a fork child), else
            # an unfaulted one (exact).
            src = copied_from
            if src is None:
                src = next((v for v in tgt.mm.vmas if v.anon_vma is anon_vma), None) \
                    if anon_vma is not None else None
            if src is None:
                src = Vma(tgt.mm, 0, 0, 0, frozenset(), frozenset(), None, "(new range)")
        b = self._b
        if b is None or not (b.serves(src) or b.serves(tgt)):
            # no hook with the Kernel ran yet in this replay (only unfaulted VMAs so far)
            b = self._b = binding.Binding(self.library, None, self.counters)
        return bool(b.call(binding.MERGEABLE, [src, tgt], int(tgt.start >= src.end)))

    def new_root_anon_vma(self, k: Kernel, label: str | None = None) -> AnonVma:
        av = AnonVma()
        if label is not None:
            k.name(av, label)
        self._bind(k).bind_next = av
        return av

    def attach_anon_vma(self, k: Kernel, vma: Vma, av: AnonVma) -> None:
        b = self._bind(k)
        if b.bind_next is av:
            # a new root: the tree's own __anon_vma_prepare() with no neighbour to reuse
            b.call(binding.PREPARE, [vma], window=0)
        else:
            num = b.av_number(av)
            if not num:
                raise KeyError(av)
            b.call(binding.ATTACH, [vma], num)


def tree_policy(spec: TreeSpec) -> KernelTreePolicy:
    tree = open_tree(spec)
    built = build.build(tree)
    _warn_uncompiled(tree.name, tree.key, built.uncompiled)
    return KernelTreePolicy(tree, built)


_warned: set[str] = set()


def _warn_uncompiled(name: str, key: str, where: tuple[str, ...]) -> None:
    """Tell the user (on standard error, once a process: not from search's workers) where
    the patches change code this policy does not run."""
    import multiprocessing
    if not where or key in _warned or multiprocessing.parent_process() is not None:
        return
    _warned.add(key)
    if where == (build.UNCHANGED,):
        sys.stderr.write(f"anondiff: warning: {name}: the patches change none of the files the "
                         f"anon_vma code is cut from; the policy is the unpatched tree's\n")
        return
    for w in where:
        sys.stderr.write(f"anondiff: warning: {name}: {w}: the patches change code that is "
                         f"not compiled (anondiff runs its own model there): no effect here\n")
