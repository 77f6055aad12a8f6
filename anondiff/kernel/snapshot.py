"""Freeze the live kernel objects into a :class:`~anondiff.topology.Topology`."""
from __future__ import annotations

from operator import attrgetter

from ..progress import EVERY, bar
from ..scenario import PAGE_SHIFT, PROT_BITS
from ..topology import AnonVmaView, Finding, PageView, ProcessView, Topology, VmaView
from .objects import AnonVma, Vma
from .state import Kernel

_PROT: dict[frozenset[str], tuple[str, ...]] = {}
_FLAGS: dict[tuple[frozenset[str], bool], tuple[str, ...]] = {}


def _prot(prot: frozenset[str]) -> tuple[str, ...]:
    out = _PROT.get(prot)
    if out is None:
        out = _PROT[prot] = tuple(b for b in PROT_BITS if b in prot)
    return out


def _flags(flags: frozenset[str], file: bool) -> tuple[str, ...]:
    out = _FLAGS.get((flags, file))
    if out is None:
        out = _FLAGS[(flags, file)] = tuple(sorted(flags | {"file"} if file else flags))
    return out


def freeze(k: Kernel, scenario: str, label: str, step: int,
           findings: tuple[Finding, ...], crashed: bool = False) -> Topology:
    """The topology of every mm and anon_vma of ``k`` now, by name (see :mod:`anondiff.topology`).

    Written for a large mm (tens of thousands of VMAs, one snapshot per step in a search): the
    fields positionally, a VMA's reference string made once for the users and the tree that
    name it, a one-page VMA's page found without a loop."""
    users: dict[AnonVma, list[str]] = {}
    #: VMA -> "PROC/NAME" (the VMAs of an mm, in it)
    refs: dict[Vma, str] = {}
    processes = []
    new_vma_view = VmaView.__new__   # positional construction, as the fields are declared
    new_page_view = PageView.__new__
    prots, flag_names = _PROT, _FLAGS
    #: anon_vma -> the names of a one-link chain to it (one tuple for all its VMAs)
    single: dict[AnonVma, tuple[str, ...]] = {}
    for mm in k.mms.values():
        ptes = mm.ptes
        npte = len(ptes)
        mm_prefix = mm.name + "/"
        vmas = []
        progress = bar(f"taking the snapshot of {mm.name}", len(mm.vmas))
        for i, vma in enumerate(mm.vmas):
            if progress and not i % EVERY:
                progress.update(i)
            avcs = vma.avcs
            if len(avcs) == 1:          # most VMAs: one link, shared names
                only = avcs[0].anon_vma
                chain = [only]
                names = single.get(only)
                if names is None:
                    names = single[only] = (only.name or "(unnamed)",)
            else:
                chain = [avc.anon_vma for avc in reversed(avcs)]
                names = tuple([a.name or "(unnamed)" for a in chain])
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
            if npte:
                start, end = vma.start, vma.end
                if end - start == 1:
                    page = ptes.get(start)
                    if page is not None:
                        mapping = page.mapping
                        pages = (new_page_view(PageView, page.name, start << PAGE_SHIFT,
                                               page.index, mapping.name or "(unnamed)",
                                               mapping in chain, mapping.freed),)
                else:
                    if end - start <= npte:
                        nums = [p for p in range(start, end) if p in ptes]
                    else:
                        nums = sorted(p for p in ptes if start <= p < end)
                    if nums:
                        pages = tuple([new_page_view(PageView, page.name, p << PAGE_SHIFT,
                                                     page.index, page.mapping.name or "(unnamed)",
                                                     page.mapping in chain, page.mapping.freed)
                                       for p in nums for page in (ptes[p],)])
            prot = prots.get(vma.prot)
            if prot is None:
                prot = _prot(vma.prot)
            flags = flag_names.get((vma.flags, isinstance(vma.file, str)))
            if flags is None:
                flags = _flags(vma.flags, isinstance(vma.file, str))
            vmas.append(new_vma_view(
                VmaView, vma.name, vma.start << PAGE_SHIFT, vma.end << PAGE_SHIFT, vma.pgoff,
                prot, flags, None if av is None else (av.name or "(unnamed)"),
                names, pages))
        if progress:
            progress.close()
        processes.append(ProcessView(mm.name, tuple(vmas)))
    values = k.counters.values
    anon_vmas = []
    tree_order = attrgetter("vma.pgoff", "seq")
    for av in k.anon_vmas:
        tree = av.tree
        order = sorted(tree, key=tree_order) if len(tree) > 1 else tree
        parent = av.parent
        anon_vmas.append(AnonVmaView(
            av.name or "(unnamed)", av.root.name or "(unnamed)",
            None if parent is None else (parent.name or "(unnamed)"),
            av.refcount, values(av), av.freed, tuple(users.get(av, ())),
            tuple([refs.get(avc.vma) or f"{avc.vma.mm.name}/{avc.vma.name}" for avc in order])))
    return Topology(scenario, k.policy.name, label, step, tuple(processes), tuple(anon_vmas),
                    findings, crashed, k.transient_anon_vmas)
