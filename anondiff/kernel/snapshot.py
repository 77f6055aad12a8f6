"""Freeze the live kernel objects into a :class:`~anondiff.topology.Topology`."""
from __future__ import annotations

from ..progress import EVERY, bar
from ..scenario import PAGE_SHIFT, PROT_BITS
from ..topology import AnonVmaView, Finding, PageView, ProcessView, Topology, VmaView
from .objects import AnonVma
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
    users: dict[AnonVma, list[str]] = {}
    processes = []
    new_vma_view = VmaView.__new__   # positional construction, as the fields are declared
    new_page_view = PageView.__new__
    for mm in k.mms.values():
        ptes = mm.ptes
        mm_prefix = mm.name + "/"
        vmas = []
        progress = bar(f"taking the snapshot of {mm.name}", len(mm.vmas))
        for i, vma in enumerate(mm.vmas):
            if progress and not i % EVERY:
                progress.update(i)
            chain = [avc.anon_vma for avc in reversed(vma.avcs)]
            av = vma.anon_vma
            if av is not None:
                ref = mm_prefix + vma.name
                got = users.get(av)
                if got is None:
                    users[av] = [ref]
                else:
                    got.append(ref)
            pages: tuple[PageView, ...] = ()
            if ptes:
                start, end = vma.start, vma.end
                if end - start <= len(ptes):
                    nums = [p for p in range(start, end) if p in ptes]
                else:
                    nums = sorted(p for p in ptes if start <= p < end)
                if nums:
                    pages = tuple([new_page_view(PageView, page.name, p << PAGE_SHIFT, page.index,
                                                 page.mapping.name or "(unnamed)",
                                                 page.mapping in chain, page.mapping.freed)
                                   for p in nums for page in (ptes[p],)])
            vmas.append(new_vma_view(
                VmaView, vma.name, vma.start << PAGE_SHIFT, vma.end << PAGE_SHIFT, vma.pgoff,
                _prot(vma.prot), _flags(vma.flags, vma.file is not None),
                None if av is None else (av.name or "(unnamed)"),
                tuple([a.name or "(unnamed)" for a in chain]), pages))
        if progress:
            progress.close()
        processes.append(ProcessView(mm.name, tuple(vmas)))
    values = k.counters.values
    anon_vmas = []
    for av in k.anon_vmas:
        tree = av.tree
        if len(tree) > 1:
            order = sorted(tree, key=lambda avc: (avc.vma.pgoff, avc.seq))
        else:
            order = list(tree)
        parent = av.parent
        anon_vmas.append(AnonVmaView(
            av.name or "(unnamed)", av.root.name or "(unnamed)",
            None if parent is None else (parent.name or "(unnamed)"),
            av.refcount, values(av), av.freed, tuple(users.get(av, ())),
            tuple([f"{avc.vma.mm.name}/{avc.vma.name}" for avc in order])))
    return Topology(scenario, k.policy.name, label, step, tuple(processes), tuple(anon_vmas),
                    findings, crashed, k.transient_anon_vmas)
