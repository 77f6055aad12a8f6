"""The rmap primitives every policy shares (mm/rmap.c, and the anon_vma parts of mm/mmap.c,
later mm/vma.c).  Policies override only the decisions that differ: anon_vma_clone and
anon_vma_fork."""
from __future__ import annotations

from .objects import AnonVma, AnonVmaChain, Vma, flags_match
from .state import Kernel

def ref(vma: Vma) -> str:
    return f"{vma.mm.name}/{vma.name}"


def drop_anon_vma(vma: Vma) -> None:
    """``vma->anon_vma = NULL`` where the caller reads the field again after calls that may set
    it: a call, not an assignment, so that mypy (and so the compiled model, which checks the
    type it reads against mypy's) does not take the field to stay NULL."""
    vma.anon_vma = None


def avname(av: AnonVma | None) -> str:
    return "NULL" if av is None else (av.name or "(unnamed)")


def interval_tree_insert(k: Kernel, avc: AnonVmaChain) -> None:
    av = avc.anon_vma
    if av.freed:
        k.event("UAF", avc.vma, f"anon_vma_interval_tree_insert into freed {avname(av)}")
    avc.seq = k.avc_seq()
    av.tree[avc] = None
    k.dirty_vmas.add(avc.vma)
    if av.seq == -1:                        # not named yet
        k.name(av)


def anon_vma_chain_assign(k: Kernel, vma: Vma, av: AnonVma) -> AnonVmaChain:
    """Put a new chain at the head of vma's same_vma list (not yet in the tree)."""
    avc = AnonVmaChain(vma, av, 0)
    vma.avcs.append(avc)
    k.dirty_vmas.add(vma)
    return avc


def anon_vma_chain_link(k: Kernel, vma: Vma, av: AnonVma) -> AnonVmaChain:
    """anon_vma_chain_link(): head of vma's chain, and into av's interval tree.

    (anon_vma_chain_assign() and interval_tree_insert() in one: the hot path of a fork.)
    The VMA is marked for the incremental checks only in an mm they know (``Mm.dirty``): a
    new one, a fork's child, is checked whole."""
    seq = k._avc_seq = k._avc_seq + 1
    avc = AnonVmaChain(vma, av, seq)
    vma.avcs.append(avc)
    vma.mm.touch(vma)
    if av.freed:
        k.event("UAF", vma, f"anon_vma_interval_tree_insert into freed {avname(av)}")
    av.tree[avc] = None
    if av.seq == -1:                        # not named yet
        k.name(av)
    return avc


def rekey(k: Kernel, vma: Vma) -> None:
    """anon_vma_interval_tree_pre_update_vma() + post_update: the VMA's range changed.

    Each chain is taken out of its anon_vma's tree and put back: into freed memory, if that
    anon_vma was freed under the chain (one UAF per link)."""
    k.dirty_vmas.add(vma)
    for avc in reversed(vma.avcs):          # vma.same_vma(), compiled as a loop, not a call
        av = avc.anon_vma
        tree = av.tree
        if av.freed:
            k.event("UAF", vma, f"anon_vma_interval_tree_remove/insert (re-key) in freed {avname(av)}")
        if avc in tree:
            del tree[avc]
            avc.seq = k.avc_seq()
            tree[avc] = None


def anon_vma_compatible(a: Vma, b: Vma) -> bool:
    """anon_vma_compatible(a, b), a below b: adjacent, same file, pgoff linear, and vm_flags
    equal but for VM_READ|VM_WRITE|VM_EXEC (``prot`` here) and VM_SOFTDIRTY
    (VMA_IGNORE_MERGE_FLAGS in 2026: VM_SOFTDIRTY and VM_MAYBE_GUARD; mm/vma.c@7.2.13); vm_ops
    (``close``) are not compared ("doesn't _have_ to mean that we can merge")."""
    return (a.end == b.start
            and a.file == b.file
            and flags_match(a.flags, b.flags)
            and b.pgoff == a.pgoff + (b.start - a.start))


def reusable_anon_vma(old: Vma, a: Vma, b: Vma) -> AnonVma | None:
    """reusable_anon_vma(): only a root that never went through a fork (singular chain)."""
    if anon_vma_compatible(a, b) and old.anon_vma is not None and len(old.avcs) == 1:
        return old.anon_vma
    return None


def find_mergeable_anon_vma(vma: Vma, prev: Vma | None, next: Vma | None) -> AnonVma | None:
    """find_mergeable_anon_vma(): try the next VMA, then the previous one.

    ``prev``/``next`` are whatever the kernel of the era sees at that moment: the mm neighbours
    at a fault, but at fork time (WIPEONFORK before v5.6) the byte-copied ``vm_prev``/``vm_next``
    that still point into the parent.
    """
    if next is not None:
        av = reusable_anon_vma(next, vma, next)
        if av is not None:
            return av
    if prev is not None:
        return reusable_anon_vma(prev, prev, vma)
    return None


def anon_vma_prepare(k: Kernel, vma: Vma, prev: Vma | None, next: Vma | None) -> None:
    """__anon_vma_prepare(): first anonymous fault in a VMA with no anon_vma.

    The chain is allocated first, then (when no neighbour's anon_vma is reusable) the anon_vma;
    either failing returns -ENOMEM with the VMA untouched (out_enomem / out_enomem_free_avc, the
    same in every era: mm/rmap.c@v4.19 to mm/rmap.c@7.2), and the fault returns VM_FAULT_OOM:
    the write does not happen."""
    if vma.anon_vma is not None:
        return
    if k.fail_nth and k.anon_vma_chain_alloc_fails("__anon_vma_prepare"):
        raise k.enomem()                                    # out_enomem
    av = k.policy.find_mergeable_anon_vma(vma, prev, next)
    if av is None:
        if k.fail_nth and k.anon_vma_alloc_fails("__anon_vma_prepare"):
            raise k.enomem()                                # out_enomem_free_avc
        av = new_root_anon_vma(k)
    attach_anon_vma(k, vma, av)


def new_root_anon_vma(k: Kernel, label: str | None = None) -> AnonVma:
    """A new root as __anon_vma_prepare() allocates it, with its self-parent link."""
    av = k.anon_vma_alloc()
    if label is not None:
        k.name(av, label)
    k.counters.child_linked(av)
    return av


def attach_anon_vma(k: Kernel, vma: Vma, av: AnonVma) -> None:
    """The tail of __anon_vma_prepare(): the VMA uses av, linked at the head of its chain."""
    vma.anon_vma = av
    anon_vma_chain_link(k, vma, av)
    k.counters.vma_attached(av)


def new_child_anon_vma(k: Kernel, vma: Vma, pvma_av: AnonVma) -> AnonVma:
    """The allocation tail of anon_vma_fork(): a new anon_vma whose parent is the parent VMA's,
    holding a reference on the root, linked at the head of vma's chain."""
    counters = k.counters
    av = AnonVma()                          # anon_vma_alloc()
    root = av.root = pvma_av.root
    if counters.has_parent:
        av.parent = pvma_av
    else:
        av.parent = None
    if pvma_av.freed or root.freed:
        k.event("UAF", ref(vma), f"anon_vma_fork: the parent VMA's anon_vma {avname(pvma_av)} "
                f"(root {avname(root)}) is freed: get_anon_vma() writes freed memory")
    root.refcount += 1                      # get_anon_vma(anon_vma->root)
    counters.vma_attached(av)
    vma.anon_vma = av
    # anon_vma_chain_link(k, vma, av), inline: this is the hot path of a fork
    seq = k._avc_seq = k._avc_seq + 1
    avc = AnonVmaChain(vma, av, seq)
    vma.avcs.append(avc)
    vma.mm.touch(vma)
    av.tree[avc] = None
    k.name(av)
    if av.parent is not None:
        counters.child_linked(av.parent)
    return av


def anon_vma_fork_tail(k: Kernel, vma: Vma, pvma_av: AnonVma) -> None:
    """The end of anon_vma_fork() before 2026, when anon_vma_clone() reused nothing: allocate
    the anon_vma, then its chain, then link (:func:`new_child_anon_vma`).

    mm/rmap.c@v6.12.117 (the same since commit 5beb49305251, v2.6.34)::

        anon_vma = anon_vma_alloc();
        if (!anon_vma)
                goto out_error;
        ...
        avc = anon_vma_chain_alloc(GFP_KERNEL);
        if (!avc)
                goto out_error_free_anon_vma;
        ...
     out_error_free_anon_vma:
        put_anon_vma(anon_vma);
     out_error:
        unlink_anon_vmas(vma);
        return -ENOMEM;

    The anon_vma freed at out_error_free_anon_vma was never linked (counted in
    ``k.transient_anon_vmas``); unlink_anon_vmas() drops the chain anon_vma_clone() copied."""
    if k.fail_nth:
        if k.anon_vma_alloc_fails("anon_vma_fork"):
            k.policy.unlink_anon_vmas(k, vma)                   # out_error
            raise k.enomem()
        if k.anon_vma_chain_alloc_fails("anon_vma_fork"):
            k.transient_anon_vmas += 1                          # out_error_free_anon_vma
            k.policy.unlink_anon_vmas(k, vma)
            raise k.enomem()
    new_child_anon_vma(k, vma, pvma_av)


def put_anon_vma(k: Kernel, av: AnonVma) -> None:
    """put_anon_vma() / __put_anon_vma(): a non-root drops its reference on the root."""
    if av.freed:
        k.event("UAF", avname(av), "put_anon_vma on a freed anon_vma")
        return
    av.refcount -= 1
    if av.refcount:
        return
    root = av.root
    k.free(av)
    if root is not av:
        put_anon_vma(k, root)


def unlink_anon_vmas(k: Kernel, vma: Vma) -> None:
    """unlink_anon_vmas(): drop every chain of the VMA; put the anon_vmas whose tree emptied."""
    # 2026: return at once, warning if the chain is not empty.  (The VMA's field tested first:
    # the policy's class setting is a look-up by name.)
    if vma.anon_vma is None and k.policy.unlink_returns_if_unfaulted:
        if vma.avcs:
            k.event("VM_WARN_ON_ONCE", ref(vma), "unlink_anon_vmas: no anon_vma but a chain")
        return
    k.dirty_vmas.add(vma)
    counters = k.counters
    emptied: list[AnonVma] = []
    for avc in reversed(vma.avcs):          # head to tail: vma.same_vma(), inline
        av = avc.anon_vma
        if av.freed:
            k.event("UAF", ref(vma), f"unlink_anon_vmas: chain links freed {avname(av)}")
        tree = av.tree
        if avc in tree:                     # (not tree.pop(avc, None): compiled, a method call)
            del tree[avc]
        if not tree:
            if av.parent is not None:
                counters.child_unlinked(av.parent)
            emptied.append(av)
    vma.avcs.clear()
    if vma.anon_vma is not None:
        if vma.anon_vma.freed:
            k.event("UAF", ref(vma), f"unlink_anon_vmas: vma->anon_vma {avname(vma.anon_vma)} is freed")
        counters.vma_detached(vma.anon_vma)
    for av in emptied:                      # phase 2
        for what in counters.warnings_at_free(av):
            k.event("VM_WARN_ON", avname(av), what)
        put_anon_vma(k, av)
