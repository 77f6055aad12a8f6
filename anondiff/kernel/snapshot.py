"""Freeze the live kernel objects into a :class:`~anondiff.topology.Topology`."""
from __future__ import annotations

from typing import Iterable

from ..progress import EVERY, bar
from ..scenario import PAGE_SHIFT, PROT_BITS
from ..topology import AnonVmaView, Finding, PageView, ProcessView, Topology, VmaView
from .objects import AnonVma, AnonVmaChain, Vma
from .state import Kernel

_PROT: dict[frozenset[str], tuple[str, ...]] = {}
#: the flags shown for an anonymous VMA (no file), and for a VMA of a named file
_FLAGS: dict[frozenset[str], tuple[str, ...]] = {}
_FILE_FLAGS: dict[frozenset[str], tuple[str, ...]] = {}

_tuple_new = tuple.__new__


def _seq(avc: AnonVmaChain) -> int:
    return avc.seq


def _pgoff(avc: AnonVmaChain) -> int:
    # (the sort keys as functions, not attrgetters: compiled, two field loads each)
    return avc.vma.pgoff


def _prot(prot: frozenset[str]) -> tuple[str, ...]:
    out = _PROT.get(prot)
    if out is None:
        out = _PROT[prot] = tuple(b for b in PROT_BITS if b in prot)
    return out


def _flags(flags: frozenset[str], file: bool) -> tuple[str, ...]:
    cache = _FILE_FLAGS if file else _FLAGS
    out = cache.get(flags)
    if out is None:
        out = cache[flags] = tuple(sorted(flags | {"file"} if file else flags))
    return out


def freeze(k: Kernel, scenario: str, label: str, step: int,
           findings: tuple[Finding, ...], crashed: bool = False) -> Topology:
    """The topology of every mm and anon_vma of ``k`` now, by name (see :mod:`anondiff.topology`).

    Written for a large mm (tens of thousands of VMAs, one snapshot per step in a search): the
    views made as the tuples they are (``tuple.__new__``, as a NamedTuple's own ``__new__``
    does, without a call into its Python code), a VMA's reference string made once for the
    users and the tree that name it, a one-page VMA's page found without a loop, a one- or
    two-link chain's names without a list."""
    users: dict[AnonVma, list[str]] = {}
    #: VMA -> "PROC/NAME" (the VMAs of an mm, in it)
    refs: dict[Vma, str] = {}
    processes = []
    tuple_new = _tuple_new
    prots, anon_flags = _PROT, _FLAGS
    #: anon_vma -> the names of a one-link chain to it (one tuple for all its VMAs)
    single: dict[AnonVma, tuple[str, ...]] = {}
    for mm in k.mms.values():
        ptes = mm.ptes
        npte = len(ptes)
        mm_prefix = mm.name + "/"
        vmas = []
        last_end, last_end_addr = -1, None     # the VMA below: its end, as a page and an object
        progress = bar(f"taking the snapshot of {mm.name}", len(mm.vmas))
        for i, vma in enumerate(mm.vmas):
            if progress and not i % EVERY:
                progress.update(i)
            avcs = vma.avcs
            nlinks = len(avcs)
            head: AnonVma | None = None
            if nlinks == 1:             # most VMAs: one link, shared names
                head = avcs[0].anon_vma
                names = single.get(head)
                if names is None:
                    names = single[head] = (head.name or "(unnamed)",)
            elif nlinks == 2:           # a fork child's: its own anon_vma, then the parent's
                head = avcs[1].anon_vma
                tail = avcs[0].anon_vma
                names = (head.name or "(unnamed)", tail.name or "(unnamed)")
            else:
                names = tuple([avc.anon_vma.name or "(unnamed)" for avc in reversed(avcs)])
            ref = mm_prefix + vma.name
            if vma.mm is mm:
                refs[vma] = ref
            av = vma.anon_vma
            if av is not None:
                got = users.get(av)
                if got is None:
                    users[av] = [ref]
                else:
                    got.append(ref)
            pages: tuple[PageView, ...] = ()
            start, end = vma.start, vma.end
            # the numbers as objects once each (compiled, an int field is boxed anew at each
            # use): a VMA's start shares the end of the VMA below when they meet, a one-page
            # VMA's page its address, and its index when it is pgoff
            addr: object = last_end_addr if start == last_end else start << PAGE_SHIFT
            end_addr: object = end << PAGE_SHIFT
            last_end, last_end_addr = end, end_addr
            pgoff: object = vma.pgoff
            if npte:
                if end - start == 1:
                    page = ptes.get(start)
                    if page is not None:
                        mapping = page.mapping
                        index = page.index
                        pages = (tuple_new(PageView, (
                            page.name, addr, pgoff if index == vma.pgoff else index,
                            mapping.name or "(unnamed)", _in_chain(mapping, avcs, head),
                            mapping.freed)),)
                else:
                    if end - start <= npte:
                        nums = [p for p in range(start, end) if p in ptes]
                    else:
                        nums = sorted(p for p in ptes if start <= p < end)
                    if nums:
                        chain = [avc.anon_vma for avc in avcs]
                        pages = tuple([tuple_new(PageView, (
                            page.name, p << PAGE_SHIFT, page.index,
                            page.mapping.name or "(unnamed)", page.mapping in chain,
                            page.mapping.freed))
                            for p in nums for page in (ptes[p],)])
            prot = prots.get(vma.prot)
            if prot is None:
                prot = _prot(vma.prot)
            file = isinstance(vma.file, str)
            flags = None if file else anon_flags.get(vma.flags)
            if flags is None:
                flags = _flags(vma.flags, file)
            vmas.append(tuple_new(VmaView, (
                vma.name, addr, end_addr, pgoff,
                prot, flags, None if av is None else (av.name or "(unnamed)"),
                names, pages)))
        if progress:
            progress.close()
        processes.append(ProcessView(mm.name, tuple(vmas)))
    values = k.counters.values
    #: the counters' values of the anon_vma before: one tuple for a run of anon_vmas with the
    #: same (a fork's children, one after another, all have)
    last_vals: tuple[tuple[str, int], ...] = ()
    anon_vmas = []
    for av in k.anon_vmas:
        order: Iterable[AnonVmaChain] = av.tree
        if len(av.tree) > 1:
            # sorted by (pgoff, seq): by seq (the insertion order already, mostly), then
            # stably by pgoff, two sorts of int keys instead of one of tuples
            ordered = sorted(av.tree, key=_seq)
            ordered.sort(key=_pgoff)
            order = ordered
        tree_refs = tuple([refs.get(avc.vma) or f"{avc.vma.mm.name}/{avc.vma.name}"
                           for avc in order])
        parent = av.parent
        got = users.get(av)
        av_users: tuple[str, ...] = () if got is None else tuple(got)
        if av_users == tree_refs:
            av_users = tree_refs        # (one tuple for both, as most anon_vmas have)
        vals = values(av)
        if vals == last_vals:
            vals = last_vals
        else:
            last_vals = vals
        anon_vmas.append(tuple_new(AnonVmaView, (
            av.name or "(unnamed)", av.root.name or "(unnamed)",
            None if parent is None else (parent.name or "(unnamed)"),
            av.refcount, vals, av.freed, av_users, tree_refs)))
    return Topology(scenario, k.policy.name, label, step, tuple(processes), tuple(anon_vmas),
                    findings, crashed, k.transient_anon_vmas)


def _in_chain(mapping: AnonVma, avcs: list[AnonVmaChain], head: AnonVma | None) -> bool:
    """Is ``mapping`` one of the anon_vmas of the chain ``avcs`` (``head``: its head, when the
    chain has one or two links)?"""
    if mapping is head:
        return True
    return any(avc.anon_vma is mapping for avc in avcs)
