"""Raw captures (kernel addresses) -> the frozen :class:`~anondiff.topology.Topology` the engine
produces, with the names of the prediction it is compared with.

Kernel pointers have no names.  VMAs are named from the prediction by address range (a live VMA
covering several predicted ones, or part of one, is named after them, so an unpredicted merge or
split shows as a difference).  anon_vmas and pages are paired with the prediction's by position
(same process, same VMA, same place in the chain; same page address), in the engine's order, and
keep that name while they live; one the prediction has no counterpart for is named ``AV<n>`` /
``pg<n>`` after the prediction's highest number.  Names are stable across the captures of one run.
"""
from __future__ import annotations

import re
from collections import Counter
from typing import Iterable

from ..topology import AnonVmaView, Finding, PageView, ProcessView, Topology, VmaView
from .reader import (VM_ACCOUNT, VM_DONTCOPY, VM_EXEC, VM_READ, VM_SHARED, VM_WIPEONFORK,
                     VM_WRITE, RawAnonVma, RawTask, RawVma)


def prot_of(flags: int) -> tuple[str, ...]:
    return tuple(n for n, bit in (("read", VM_READ), ("write", VM_WRITE), ("exec", VM_EXEC))
                 if flags & bit)


def flags_of(v: RawVma) -> tuple[str, ...]:
    out = {n for n, bit in (("dontcopy", VM_DONTCOPY), ("wipeonfork", VM_WIPEONFORK),
                            ("shared", VM_SHARED), ("account", VM_ACCOUNT)) if v.flags & bit}
    if v.file:
        out.add("file")
    return tuple(sorted(out))


def _number(name: str, prefix: str) -> int:
    m = re.fullmatch(prefix + r"(\d+)", name)
    return int(m.group(1)) if m else -1


class Namer:
    """Pointer -> name, kept across the captures of one run."""

    def __init__(self, predictions: Iterable[Topology]) -> None:
        preds = list(predictions)
        self.next_av = 1 + max((_number(a.name, "AV") for t in preds for a in t.anon_vmas),
                               default=-1)
        self.next_pg = 1 + max((_number(p.name, "pg") for t in preds for pr in t.processes
                                for v in pr.vmas for p in v.pages), default=-1)
        self.av: dict[int, str] = {}
        self.pg: dict[int, str] = {}
        #: every anon_vma named so far, in naming order, with its last view (freed ones stay)
        self.seen: dict[str, AnonVmaView] = {}

    def _pair(self, table: dict[int, str], ptr: int, name: str | None) -> None:
        if ptr and ptr not in table and name is not None and name not in table.values():
            table[ptr] = name

    def name_av(self, ptr: int) -> str:
        if ptr not in self.av:
            while f"AV{self.next_av}" in self.av.values():
                self.next_av += 1
            self.av[ptr] = f"AV{self.next_av}"
            self.next_av += 1
        return self.av[ptr]

    def name_pg(self, pfn: int) -> str:
        if pfn not in self.pg:
            self.pg[pfn] = f"pg{self.next_pg}"
            self.next_pg += 1
        return self.pg[pfn]


def vma_names(pred: ProcessView | None, vmas: tuple[RawVma, ...]) -> list[str]:
    if pred is None:
        return [f"{v.start:#x}" for v in vmas]
    out = []
    for v in vmas:
        exact = [p.name for p in (pred.vmas if pred else ()) if (p.start, p.end) == (v.start, v.end)]
        if exact:
            out.append(exact[0])
            continue
        over = [p for p in (pred.vmas if pred else ()) if p.start < v.end and v.start < p.end]
        if not over:
            out.append(f"?{v.start:#x}")
        elif (over[0].start, over[-1].end) == (v.start, v.end):
            out.append("+".join(p.name for p in over))             # merged, unpredicted
        else:
            out.append("+".join(p.name for p in over) + f"@{v.start:#x}-{v.end:#x}")
    return out


def to_topology(pred: Topology, names: list[str], tasks: list[RawTask],
                raw_avs: dict[int, RawAnonVma], namer: Namer, findings: tuple[Finding, ...],
                policy: str) -> Topology:
    """``names``: the scenario process of each task (same order)."""
    pprocs = {p.name: p for p in pred.processes}
    vnames = [vma_names(pprocs.get(n), t.vmas) for n, t in zip(names, tasks)]
    # pair pointers with predicted names, in the engine's order: VMAs by process and address,
    # their anon_vma, then the chain from its tail (the root end), then pages by address
    for pname, t, vn in zip(names, tasks, vnames):
        for v, name in zip(t.vmas, vn):
            try:
                pv = pred.vma(f"{pname}/{name}")
            except KeyError:
                continue
            namer._pair(namer.av, v.anon_vma, pv.anon_vma)
            for ptr, pn in zip(reversed(v.chain), reversed(pv.chain)):
                namer._pair(namer.av, ptr, pn)
            by_addr = {p.addr: p.name for p in pv.pages}
            for page in v.pages:
                namer._pair(namer.pg, page.pfn, by_addr.get(page.addr))
    for raw in list(raw_avs.values()):
        pa = namer.av.get(raw.addr)
        if pa is not None and pa in {x.name for x in pred.anon_vmas}:
            pv_av = pred.anon_vma(pa)
            namer._pair(namer.av, raw.root, pv_av.root)
            namer._pair(namer.av, raw.parent, pv_av.parent)
    # the rest by first link, as the engine names them: each chain from its tail (oldest)
    for t in tasks:
        for v in t.vmas:
            for ptr in (*reversed(v.chain), v.anon_vma, *(p.anon_vma for p in v.pages)):
                if ptr:
                    namer.name_av(ptr)
    users: dict[int, list[str]] = {}
    tree: dict[int, list[tuple[int, int, str]]] = {}
    processes = []
    for i, (pname, t, vn) in enumerate(zip(names, tasks, vnames)):
        views = []
        for v, name in zip(t.vmas, vn):
            ref = f"{pname}/{name}"
            if v.anon_vma:
                users.setdefault(v.anon_vma, []).append(ref)
            for ptr in v.chain:
                tree.setdefault(ptr, []).append((v.pgoff, i, ref))
            chain = set(v.chain)
            pages = tuple(PageView(namer.name_pg(p.pfn), p.addr, p.pgindex,
                                   namer.name_av(p.anon_vma), p.anon_vma in chain,
                                   p.anon_vma not in raw_avs) for p in v.pages)
            views.append(VmaView(name, v.start, v.end, v.pgoff, prot_of(v.flags), flags_of(v),
                                 namer.name_av(v.anon_vma) if v.anon_vma else None,
                                 tuple(namer.name_av(a) for a in v.chain), pages))
        processes.append(ProcessView(pname, tuple(views)))
    live = {}
    # anon_vmas the prediction knows first, in its order, then the others by address
    order = {a.name: i for i, a in enumerate(pred.anon_vmas)}
    for a in sorted(raw_avs.values(), key=lambda a: (order.get(namer.name_av(a.addr), 1 << 30),
                                                      a.addr)):
        name = namer.name_av(a.addr)
        live[name] = AnonVmaView(
            name, namer.name_av(a.root), namer.name_av(a.parent) if a.parent else None,
            a.refcount, (("num_children", a.num_children), ("num_active_vmas", a.num_active_vmas)),
            False, tuple(users.get(a.addr, ())),
            tuple(r for _pg, _i, r in sorted(tree.get(a.addr, ()))))
    # one that was seen and can no longer be reached has been freed; its pointer may be reused
    for name, view in list(namer.seen.items()):
        if name not in live:
            namer.seen[name] = view._replace(freed=True, users=(), tree=())
            for ptr, n in list(namer.av.items()):
                if n == name:
                    del namer.av[ptr]
    namer.seen.update(live)
    pfns = {p.pfn for t in tasks for v in t.vmas for p in v.pages}
    for pfn in [p for p in namer.pg if p not in pfns]:
        del namer.pg[pfn]
    ordered = sorted(namer.seen.values(), key=lambda a: order.get(a.name, 1 << 30))
    return Topology(pred.scenario, policy, pred.label, pred.step, tuple(processes),
                    tuple(ordered), findings)


def check(t: Topology) -> list[tuple[str, str, str]]:
    """The invariants of spec section 9 on a captured topology (split counters), as
    :mod:`anondiff.kernel.checks` checks them on the model."""
    out = []
    users: Counter[str] = Counter()
    avs = {a.name: a for a in t.anon_vmas if not a.freed}
    for p in t.processes:
        sharing: dict[str, list[tuple[str, frozenset[str]]]] = {}
        for v in p.vmas:
            where = f"{p.name}/{v.name}"
            chain = frozenset(v.chain)
            if v.anon_vma is not None:
                users[v.anon_vma] += 1
                sharing.setdefault(v.anon_vma, []).append((v.name, chain))
                if v.anon_vma not in chain:
                    out.append(("I2", where, f"anon_vma {v.anon_vma} not in own chain"))
            roots = sorted({avs[c].root for c in v.chain if c in avs})
            if len(roots) > 1:
                out.append(("I1", where, f"chain spans roots {', '.join(roots)}"))
            for pg in v.pages:
                if not pg.in_chain:
                    out.append(("I6", where, f"{pg.name} mapping {pg.mapping} not in chain (rmap miss)"))
        for av, group in sharing.items():
            first_name, first_set = group[0]
            for name, s in group[1:]:
                if s != first_set:
                    out.append(("I3", f"{p.name}/{first_name}+{name}",
                                f"same anon_vma {av}, different chains"))
    children: Counter[str] = Counter()
    descendants: Counter[str] = Counter()
    for a in avs.values():
        if a.tree and a.parent is not None and a.parent != a.name:
            children[a.parent] += 1
        if a.root != a.name:
            descendants[a.root] += 1
    for a in avs.values():
        linked = bool(a.tree)
        want = (("num_children", children[a.name] + int(linked and a.parent == a.name)),
                ("num_active_vmas", users[a.name]))
        if a.counters != want:
            got = ", ".join(f"{n} {v}" for n, v in a.counters)
            exp = ", ".join(f"{n} {v}" for n, v in want)
            out.append(("I4", a.name, f"{got}; recount gives {exp}"))
        refs = int(linked) + descendants[a.name]
        if a.refcount != refs:
            out.append(("I5", a.name, f"refcount {a.refcount}; expected {refs}"))
    return out
