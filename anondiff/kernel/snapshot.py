"""Freeze the live kernel objects into a :class:`~anondiff.topology.Topology`."""
from __future__ import annotations

from bisect import bisect_left

from ..scenario import PAGE_SHIFT, PROT_BITS
from ..topology import AnonVmaView, Finding, PageView, ProcessView, Topology, VmaView
from .objects import AnonVma
from .rmap import avname
from .state import Kernel


def freeze(k: Kernel, scenario: str, label: str, step: int,
           findings: tuple[Finding, ...], crashed: bool = False) -> Topology:
    users: dict[AnonVma, list[str]] = {}
    processes = []
    for mm in k.mms.values():
        keys = sorted(mm.ptes)
        vmas = []
        for vma in mm.vmas:
            ref = f"{mm.name}/{vma.name}"
            chain = tuple(avc.anon_vma for avc in vma.same_vma())
            members = set(chain)
            if vma.anon_vma is not None:
                users.setdefault(vma.anon_vma, []).append(ref)
            pages = []
            i = bisect_left(keys, vma.start)
            while i < len(keys) and keys[i] < vma.end:
                p = keys[i]
                page = mm.ptes[p]
                pages.append(PageView(page.name, p << PAGE_SHIFT, page.index, avname(page.mapping),
                                      page.mapping in members, page.mapping.freed))
                i += 1
            flags = set(vma.flags)
            if vma.file is not None:
                flags.add("file")
            vmas.append(VmaView(
                name=vma.name, start=vma.start << PAGE_SHIFT, end=vma.end << PAGE_SHIFT,
                pgoff=vma.pgoff, prot=tuple(b for b in PROT_BITS if b in vma.prot),
                flags=tuple(sorted(flags)),
                anon_vma=None if vma.anon_vma is None else avname(vma.anon_vma),
                chain=tuple(avname(a) for a in chain), pages=tuple(pages)))
        processes.append(ProcessView(mm.name, tuple(vmas)))
    counters = k.counters
    anon_vmas = []
    for av in k.anon_vmas:
        tree = sorted(av.tree, key=lambda avc: (avc.vma.pgoff, avc.seq))
        anon_vmas.append(AnonVmaView(
            name=avname(av), root=avname(av.root),
            parent=None if av.parent is None else avname(av.parent),
            refcount=av.refcount, counters=counters.values(av), freed=av.freed,
            users=tuple(users.get(av, ())),
            tree=tuple(f"{avc.vma.mm.name}/{avc.vma.name}" for avc in tree)))
    return Topology(scenario=scenario, policy=k.policy.name, label=label, step=step,
                    processes=tuple(processes), anon_vmas=tuple(anon_vmas),
                    findings=findings, crashed=crashed,
                    transient_anon_vmas=k.transient_anon_vmas)
