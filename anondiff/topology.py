"""The frozen snapshot every renderer and the differ work from.

Engine objects are mutable and compared by identity, like kernel pointers.  A :class:`Topology` is
taken from them at one point of a replay and never changes; it holds names, not objects.

Naming (stable, documented in README):
* anon_vmas declared in the scenario keep their label (``AV0``); every other anon_vma is named
  ``AV<n>`` with n = 1, 2, ... in the order it was first linked into a chain (allocation order;
  the 2026 fork preallocation that is freed unused is never named), skipping labels in use;
* VMAs keep the names the scenario gives them (see README for splits and forks);
* anonymous pages are named ``pg<n>`` in allocation order, from 0.
"""
from __future__ import annotations

from typing import NamedTuple



class PageView(NamedTuple):
    name: str                 # "pg3"
    addr: int                 # virtual address (bytes) in this VMA
    index: int                # page->index (linear page index)
    mapping: str | None       # anon_vma name the page's mapping points to
    in_chain: bool            # rmap can find it from this VMA (mapping is in the VMA's chain)
    mapping_freed: bool       # its anon_vma has been freed


class VmaView(NamedTuple):
    name: str
    start: int                # bytes
    end: int                  # bytes, exclusive
    pgoff: int
    prot: tuple[str, ...]     # subset of ("read", "write", "exec"), in that order
    flags: tuple[str, ...]    # subset of ("dontcopy", "wipeonfork", "shared", "file"), sorted
    anon_vma: str | None
    chain: tuple[str, ...]    # same_vma list, head first
    pages: tuple[PageView, ...]


class ProcessView(NamedTuple):
    name: str
    vmas: tuple[VmaView, ...]   # ascending address

    def ref(self, vma: VmaView) -> str:
        return f"{self.name}/{vma.name}"


class AnonVmaView(NamedTuple):
    name: str
    root: str
    parent: str | None                  # None before v3.19 (no anon_vma->parent)
    refcount: int
    counters: tuple[tuple[str, int], ...]   # (("degree", 5),) or (("num_children", 1), ("num_active_vmas", 4)); () pre-3.19
    freed: bool
    users: tuple[str, ...]              # "PROC/VMA" whose vma->anon_vma is this one
    tree: tuple[str, ...]               # "PROC/VMA" linked into its interval tree, rb order

    def counter(self, key: str) -> int | None:
        for k, v in self.counters:
            if k == key:
                return v
        return None


class Finding(NamedTuple):
    """An invariant violation or a kernel warning/crash, with the step where it first appeared.

    kind: "I1".."I7" (spec section 9; "I6-UAF", "I7-UAF" for freed anon_vmas), or a kernel check:
    "VM_WARN_ON", "VM_BUG_ON", "WARN_ON_ONCE", "CRASH"; or "NOTE" (e.g. a flag unknown in the era).
    """

    kind: str
    where: str          # "C/SRC2", "C/SRC1+SRC2", "AV3", ...
    detail: str
    step: int           # 0 = starting layout, n = n-th step (1-based)
    line: int           # scenario line of that step (0 for the layout)
    active: bool        # still true in this snapshot (kernel events: False)


class Topology(NamedTuple):
    scenario: str
    policy: str
    label: str                          # "final" or a snapshot label
    step: int                           # steps replayed so far
    processes: tuple[ProcessView, ...]  # in creation order; exited processes are not listed
    anon_vmas: tuple[AnonVmaView, ...]  # in allocation order (scenario labels first), freed ones too
    findings: tuple[Finding, ...]       # everything found up to this point, in order found
    crashed: bool = False               # the replay stopped at a kernel crash
    #: anon_vmas allocated and freed without ever being linked (the 2026 anon_vma_fork()
    #: preallocates one and frees it when anon_vma_clone() reused an ancestor); never named
    transient_anon_vmas: int = 0

    def process(self, name: str) -> ProcessView:
        return _index(self).processes()[name]

    def vma(self, ref: str) -> VmaView:
        """A VMA by ``"PROC/NAME"``."""
        return _index(self).vmas()[ref]

    def anon_vma(self, name: str) -> AnonVmaView:
        return _index(self).anon_vmas()[name]


class _Index:
    """Lookup tables of one topology, each made the first time it is asked for (a renderer
    that looks up anon_vmas has no use for a table of 130,000 VMA references)."""

    __slots__ = ("topo", "_processes", "_vmas", "_anon_vmas")

    def __init__(self, topo: Topology) -> None:
        self.topo = topo
        self._processes: dict[str, ProcessView] | None = None
        self._vmas: dict[str, VmaView] | None = None
        self._anon_vmas: dict[str, AnonVmaView] | None = None

    def processes(self) -> dict[str, ProcessView]:
        if self._processes is None:
            self._processes = {p.name: p for p in self.topo.processes}
        return self._processes

    def vmas(self) -> dict[str, VmaView]:
        if self._vmas is None:
            self._vmas = {f"{p.name}/{v.name}": v for p in self.topo.processes for v in p.vmas}
        return self._vmas

    def anon_vmas(self) -> dict[str, AnonVmaView]:
        if self._anon_vmas is None:
            self._anon_vmas = {a.name: a for a in self.topo.anon_vmas}
        return self._anon_vmas


#: lookup tables of the last few topologies looked into (a Topology is an immutable tuple, so
#: they cannot live on it); each entry holds its topology, so an id is never reused under it
_INDEXES: dict[int, _Index] = {}


def _index(t: Topology) -> _Index:
    hit = _INDEXES.get(id(t))
    if hit is None or hit.topo is not t:
        if len(_INDEXES) >= 16:
            _INDEXES.clear()
        hit = _INDEXES[id(t)] = _Index(t)
    return hit


def anon_vmas_by_name(t: Topology) -> dict[str, AnonVmaView]:
    """``{name: view}`` of a topology's anon_vmas (what :meth:`Topology.anon_vma` looks in), for
    code that looks up many: do not change it."""
    return _index(t).anon_vmas()


class Replay(NamedTuple):
    """What one policy made of one scenario: the snapshots in order, the last one is "final"."""

    scenario: str
    policy: str
    #: how the policy is cited, e.g. 'commit 2555283eb40d ("mm/rmap: Fix anon_vma->degree ...")'
    policy_cite: str
    snapshots: tuple[Topology, ...]

    @property
    def final(self) -> Topology:
        return self.snapshots[-1]
