"""What a policy costs on a scenario: anon_vmas, chains, hierarchy depth, root sharing and the
rmap walk, as pure functions of a frozen :class:`~anondiff.topology.Topology` (its
``transient_anon_vmas``: the 2026 fork preallocations freed unused), plus one count only the
replay sees: fork decisions that took an existing anon_vma.

The bound: commit 7a3ef208e662 ("mm: prevent endless growth of anon_vma hierarchy") makes every
anon_vma keep a VMA or at least two children, so "the total count of anon_vmas is limited by
twice the count of VMAs" linked to the hierarchy: live anon_vmas <= 2 x VMAs with a chain.
"""
from __future__ import annotations

from bisect import bisect_right
from typing import Any, NamedTuple, Sequence

from .scenario import PAGE_SHIFT, Fork, Scenario
from .topology import Replay, Topology

#: the bound of commit 7a3ef208e662: anon_vmas per VMA linked to a hierarchy
BOUND = 2
#: roots named in the text (the busiest first); JSON has them all
ROOTS_SHOWN = 8


class PageWalk(NamedTuple):
    """rmap_walk_anon() of one anonymous page: the VMAs in its anon_vma's interval tree whose
    range covers the page's index are visited; ``mapped`` of them really map it."""

    page: str
    anon_vma: str
    visited: int
    mapped: int


class Metrics(NamedTuple):
    label: str                          # the snapshot measured
    live: int                           # anon_vmas not freed
    allocated: int                      # anon_vma_alloc() calls: named + transient
    freed: int                          # freed, transient ones included
    reused: int                         # fork decisions that took an existing anon_vma
    chains: int                         # anon_vma_chain structures (chain links of live VMAs)
    longest_chain: int
    longest_chain_vma: str | None
    deepest: int                        # anon_vmas from the deepest one up to its root
    deepest_anon_vma: str | None
    vmas_linked: int                    # VMAs with a chain (in some hierarchy)
    roots: tuple[tuple[str, int], ...]  # live root -> VMAs in its hierarchy (root lock users)
    walks: tuple[PageWalk, ...]         # one per anonymous page, in page order

    @property
    def per_vma(self) -> float:
        return self.live / self.vmas_linked if self.vmas_linked else 0.0

    @property
    def bound_holds(self) -> bool:
        return self.live <= BOUND * self.vmas_linked

    @property
    def walk_visited(self) -> float:
        return sum(w.visited for w in self.walks) / len(self.walks) if self.walks else 0.0

    @property
    def walk_mapped(self) -> float:
        return sum(w.mapped for w in self.walks) / len(self.walks) if self.walks else 0.0

    @property
    def walk_max(self) -> int:
        return max((w.visited for w in self.walks), default=0)

    def numbers(self) -> list[tuple[str, float]]:
        """The figures compare shows deltas of, in display order."""
        return [
            ("anon_vmas live", self.live),
            ("anon_vmas allocated", self.allocated),
            ("anon_vmas freed", self.freed),
            ("anon_vmas reused at fork", self.reused),
            ("anon_vma_chains", self.chains),
            ("longest chain", self.longest_chain),
            ("deepest hierarchy", self.deepest),
            ("anon_vmas per VMA", round(self.per_vma, 2)),
            ("VMAs sharing a root (most)", max((n for _, n in self.roots), default=0)),
            ("rmap walk: VMAs visited per page", round(self.walk_visited, 2)),
            ("rmap walk: VMAs visited (worst page)", self.walk_max),
            ("rmap walk: VMAs mapping the page", round(self.walk_mapped, 2)),
        ]


class Counts(NamedTuple):
    """What only the replay sees: fork decisions that gave the child VMA an anon_vma that
    already existed."""

    reused: int = 0


class Growth(NamedTuple):
    """The cost after each fork step (one generation each)."""

    step: int
    live: int
    longest_chain: int
    deepest: int


def depths(t: Topology) -> dict[str, int]:
    """anon_vmas from each anon_vma up to its root, itself included.  Before v3.19 there is no
    ``->parent``: a chain is then the exact lineage ``[own, parent, ..., root]`` (every fork
    prepends a new anon_vma to a copy of the parent's), so an entry's depth is its distance
    from the chain's tail."""
    by_name = {a.name: a for a in t.anon_vmas}
    out: dict[str, int] = {}
    if any(a.parent is not None for a in t.anon_vmas):
        for a in t.anon_vmas:
            d, cur, seen = 1, a, {a.name}
            while cur.parent is not None and cur.parent != cur.name and cur.parent not in seen:
                seen.add(cur.parent)
                cur = by_name[cur.parent]
                d += 1
            out[a.name] = d
        return out
    for p in t.processes:
        for v in p.vmas:
            for i, name in enumerate(v.chain):
                out[name] = max(out.get(name, 0), len(v.chain) - i)
    return out


def measure(t: Topology, counts: Counts = Counts()) -> Metrics:
    vmas = [(f"{p.name}/{v.name}", v) for p in t.processes for v in p.vmas]
    freed = sum(1 for a in t.anon_vmas if a.freed)
    longest, longest_vma = 0, None
    for ref, v in vmas:
        if len(v.chain) > longest:
            longest, longest_vma = len(v.chain), ref
    d = depths(t)
    deepest, deepest_av = 0, None
    for a in t.anon_vmas:
        if not a.freed and d.get(a.name, 0) > deepest:
            deepest, deepest_av = d[a.name], a.name
    roots = tuple((a.name, len(a.tree)) for a in t.anon_vmas
                  if not a.freed and a.root == a.name)
    return Metrics(
        label=t.label, live=len(t.anon_vmas) - freed,
        allocated=len(t.anon_vmas) + t.transient_anon_vmas,
        freed=freed + t.transient_anon_vmas,
        reused=counts.reused, chains=sum(len(v.chain) for _, v in vmas),
        longest_chain=longest, longest_chain_vma=longest_vma,
        deepest=deepest, deepest_anon_vma=deepest_av,
        vmas_linked=sum(1 for _, v in vmas if v.chain), roots=roots, walks=walks(t))


def walks(t: Topology) -> tuple[PageWalk, ...]:
    """rmap_walk_anon() of every anonymous page: anon_vma_interval_tree_foreach over the
    page's anon_vma for its index; a VMA maps the page when the page is in its page table."""
    trees = {a.name: a.tree for a in t.anon_vmas if not a.freed}
    vmas = {f"{p.name}/{v.name}": v for p in t.processes for v in p.vmas}
    pages: dict[str, tuple[str | None, int, int]] = {}
    for p in t.processes:
        for v in p.vmas:
            for pg in v.pages:
                seen = pages.get(pg.name)
                pages[pg.name] = (pg.mapping, pg.index, (seen[2] if seen else 0) + 1)
    # per anon_vma, the sorted starts and ends of its tree's page-offset intervals: the VMAs
    # covering an index are those started at or before it minus those ended at or before it
    spans: dict[str, tuple[list[int], list[int]]] = {}
    for av, tree in trees.items():
        starts, ends = [], []
        for ref in tree:
            v = vmas.get(ref)
            if v is not None:
                starts.append(v.pgoff)
                ends.append(v.pgoff + ((v.end - v.start) >> PAGE_SHIFT))
        spans[av] = (sorted(starts), sorted(ends))
    out = []
    for name in sorted(pages, key=lambda n: int(n[2:]) if n[2:].isdigit() else 0):
        mapping, index, mapped = pages[name]
        if mapping is None or mapping not in trees:
            continue                    # a freed anon_vma: the walk would be a use-after-free
        starts, ends = spans[mapping]
        visited = bisect_right(starts, index) - bisect_right(ends, index)
        out.append(PageWalk(name, mapping, visited, mapped))
    return tuple(out)


def grown(step: int, t: Topology) -> Growth:
    live = sum(1 for a in t.anon_vmas if not a.freed)
    longest = max((len(v.chain) for p in t.processes for v in p.vmas), default=0)
    d = depths(t)
    deepest = max((d.get(a.name, 0) for a in t.anon_vmas if not a.freed), default=0)
    return Growth(step, live, longest, deepest)


# -- replay with counts ------------------------------------------------------------------------

class _Counter:
    """A tracer (see :mod:`anondiff.explain.core`) that only counts: after each anon_vma_fork()
    call, did the child VMA end with an anon_vma that existed before the call?"""

    def __init__(self) -> None:
        self.k: Any = None
        self.reused = 0

    def why(self, fmt: str, *args: Any, cite: str | None = None) -> None:
        pass

    def enter(self, hook: str, owner: Any, args: tuple[Any, ...]) -> Any:
        if hook != "anon_vma_fork" or not args:
            return None
        from .kernel.objects import Vma
        vma = next((a for a in args if isinstance(a, Vma)), None)
        return (vma, len(self.k.anon_vmas))

    def leave(self, node: Any, result: Any, error: BaseException | None) -> None:
        if node is None or error is not None:
            return
        vma, n = node
        av = vma.anon_vma
        if av is not None and av not in self.k.anon_vmas[n:]:
            self.reused += 1


def replay_measured(scenario: Scenario, policy: Any) -> tuple[Replay, Counts, tuple[Growth, ...]]:
    """Replay as :func:`anondiff.engine.replay` does, also counting reuses and measuring the
    topology after every fork step."""
    from .engine import _Replayer
    from .explain.core import traced
    from .policies import get

    if isinstance(policy, str):
        policy = get(policy)
    counter = _Counter()
    growth: list[Growth] = []

    class Measured(_Replayer):
        def do(self, step: Any) -> None:
            super().do(step)
            if isinstance(step, Fork):
                growth.append(grown(self.step_no, self.freeze(f"after step {self.step_no}")))

    r = Measured(scenario, traced(policy, counter))  # type: ignore[arg-type]
    counter.k = r.k
    rep = r.run()
    return rep, Counts(counter.reused), tuple(growth)


# -- text --------------------------------------------------------------------------------------

def _num(x: float) -> str:
    return f"{x:.2f}" if isinstance(x, float) and not float(x).is_integer() else str(int(x))


def lines(m: Metrics) -> list[str]:
    """The metrics block of one run, one figure a line."""
    busiest = sorted(m.roots, key=lambda rn: -rn[1])
    roots = ", ".join(f"{r} {n}" for r, n in busiest[:ROOTS_SHOWN]) or "none"
    if len(busiest) > ROOTS_SHOWN:
        roots += f", and {len(busiest) - ROOTS_SHOWN} more roots"
    vmas = f"{m.vmas_linked} VMA" + ("" if m.vmas_linked == 1 else "s")
    out = [
        f"  anon_vmas live {m.live}, allocated {m.allocated}, freed {m.freed}, "
        f"reused at fork {m.reused}",
        f"  anon_vma_chains {m.chains}; longest chain {m.longest_chain}"
        + (f" ({m.longest_chain_vma})" if m.longest_chain_vma else ""),
        f"  deepest hierarchy {m.deepest}" + (f" ({m.deepest_anon_vma})" if m.deepest_anon_vma else ""),
        f"  anon_vmas per VMA {m.per_vma:.2f} ({m.live} for {vmas} with a chain; bound of "
        f"commit 7a3ef208e662: {BOUND}, {'holds' if m.bound_holds else 'exceeded'})",
        f"  VMAs sharing each root: {roots}",
        f"  rmap walk per anonymous page ({len(m.walks)} pages): visits {m.walk_visited:.2f} "
        f"VMAs (worst {m.walk_max}), {m.walk_mapped:.2f} map it",
    ]
    return out


def delta_lines(a: Metrics, b: Metrics, name_a: str, name_b: str) -> list[str]:
    """``anon_vmas allocated: 7 -> 6 (-14.3%)``, every figure, A then B."""
    out = [f"metrics ({a.label}), {name_a} -> {name_b}:"]
    for (label, x), (_, y) in zip(a.numbers(), b.numbers()):
        if x == y:
            change = "same"
        elif x == 0:
            change = "from 0"
        else:
            change = f"{(y - x) * 100 / x:+.1f}%"
        out.append(f"  {label}: {_num(x)} -> {_num(y)} ({change})")
    return out


def as_json(m: Metrics, growth: Sequence[Growth] = ()) -> dict[str, Any]:
    return {
        "label": m.label, "anon_vmas_live": m.live, "anon_vmas_allocated": m.allocated,
        "anon_vmas_freed": m.freed, "anon_vmas_reused": m.reused, "anon_vma_chains": m.chains,
        "longest_chain": m.longest_chain, "longest_chain_vma": m.longest_chain_vma,
        "deepest_hierarchy": m.deepest, "deepest_anon_vma": m.deepest_anon_vma,
        "vmas_linked": m.vmas_linked, "anon_vmas_per_vma": round(m.per_vma, 4),
        "bound": BOUND, "bound_holds": m.bound_holds,
        "roots": [{"root": r, "vmas": n} for r, n in m.roots],
        "rmap_walk": [{"page": w.page, "anon_vma": w.anon_vma, "visited": w.visited,
                       "mapped": w.mapped} for w in m.walks],
        "growth": [{"step": g.step, "anon_vmas_live": g.live, "longest_chain": g.longest_chain,
                    "deepest_hierarchy": g.deepest} for g in growth],
    }
