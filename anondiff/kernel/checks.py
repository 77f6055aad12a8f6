"""The invariants of spec section 9, checked on the live objects after every step.

Each returns (kind, where, detail); the engine turns new ones into findings.
"""
from __future__ import annotations

from collections import Counter
from typing import Iterator

from .objects import AnonVma
from .rmap import avname
from .state import Kernel

Violation = tuple[str, str, str]


def check(k: Kernel) -> list[Violation]:
    out: list[Violation] = []
    users: Counter[AnonVma] = Counter()
    for mm in k.mms.values():
        keys = sorted(mm.ptes)
        sharing: dict[AnonVma, list[tuple[str, frozenset[AnonVma]]]] = {}
        for vma in mm.vmas:
            where = f"{mm.name}/{vma.name}"
            chain = [avc.anon_vma for avc in vma.same_vma()]
            in_chain = frozenset(chain)
            av = vma.anon_vma
            if av is not None:
                users[av] += 1
                sharing.setdefault(av, []).append((vma.name, in_chain))
                if av.freed:
                    out.append(("I7-UAF", where, f"vma->anon_vma {avname(av)} is freed"))
                if av not in in_chain:
                    out.append(("I2", where, f"anon_vma {avname(av)} not in own chain"))
            for c in chain:
                if c.freed:
                    out.append(("I7-UAF", where, f"chain links freed {avname(c)}"))
            roots = sorted({avname(c.root) for c in chain})
            if len(roots) > 1:
                out.append(("I1", where, f"chain spans roots {', '.join(roots)}"))
            for p in _pages(keys, vma.start, vma.end):
                page = mm.ptes[p]
                m = page.mapping
                if m.freed:
                    out.append(("I6-UAF", where, f"{page.name} mapped, its anon_vma {avname(m)} is freed"))
                elif m not in in_chain:
                    out.append(("I6", where, f"{page.name} mapping {avname(m)} not in chain (rmap miss)"))
        for av, group in sharing.items():
            first_name, first_set = group[0]
            for name, s in group[1:]:
                if s != first_set:
                    out.append(("I3", f"{mm.name}/{first_name}+{name}",
                                f"same anon_vma {avname(av)}, different chains"))
    out.extend(_counters(k, users))
    return out


def _pages(keys: list[int], start: int, end: int) -> Iterator[int]:
    from bisect import bisect_left
    i = bisect_left(keys, start)
    while i < len(keys) and keys[i] < end:
        yield keys[i]
        i += 1


def _counters(k: Kernel, users: Counter[AnonVma]) -> Iterator[Violation]:
    """I4 (counters against a recount) and I5 (refcounts) for every live anon_vma."""
    children: Counter[AnonVma] = Counter()
    descendants: Counter[AnonVma] = Counter()
    for av in k.live:
        if av.tree and av.parent is not None and av.parent is not av:
            children[av.parent] += 1
        if av.root is not av:
            descendants[av.root] += 1
    counters = k.counters
    for av in sorted(k.live, key=lambda a: a.seq):
        linked = bool(av.tree)
        want = counters.expected(users[av], children[av], linked and av.parent is av)
        have = counters.values(av)
        if have != want:
            got = ", ".join(f"{n} {v}" for n, v in have)
            exp = ", ".join(f"{n} {v}" for n, v in want)
            yield ("I4", avname(av), f"{got}; recount gives {exp}")
        refs = int(linked) + descendants[av]
        if av.refcount != refs:
            yield ("I5", avname(av), f"refcount {av.refcount}; expected {refs}")
