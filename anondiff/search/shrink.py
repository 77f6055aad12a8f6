"""Shrink a finding: the smallest scenario that is still a finding of the same kind.

Greedy, deterministic passes, repeated until none makes progress: drop steps (halves, then
quarters, ... then single steps; dropping a fork drops everything its child and the child's
descendants do), drop starting processes and starting VMAs, drop written pages, make VMAs
smaller and plainer (protection ``rw``, anonymous, no madvise flags, no shared label), make the
ranges of mprotect, munmap and madvise narrower, and remove page columns from the whole address
space (which closes gaps and moves everything down towards the first page of the window).  A
candidate is kept when it replays and is still a finding (see :meth:`Judge.keeps`).

The shrinker works on the generator's forms (address ranges, ``write: P, addr: ..``); the
scenario writer gives names afterwards.
"""
from __future__ import annotations

from typing import Callable, Iterator

from ..scenario import (PAGE_SHIFT, Fault, Fork, Madvise, Mmap, Mprotect, Mremap, Munmap,
                        Scenario, Step, Target, VmaSpec)
from .generate import PROTS
from .judge import Judge, Verdict

#: Candidates judged at most, per shrink (a safety net; shrinks seen end far below it).
MAX_EVALS = 4000

RW = PROTS["rw"]
R = PROTS["r"]


def step_process(step: Step) -> str:
    """The process a step acts on (a fork's parent)."""
    if isinstance(step, (Mprotect, Munmap, Madvise, Mremap)):
        return step.target.process
    return step.process  # type: ignore[union-attr]


def _descendants(steps: tuple[Step, ...], roots: set[str]) -> set[str]:
    gone = set(roots)
    for s in steps:
        if isinstance(s, Fork) and s.process in gone:
            gone.add(s.child)
    return gone


def _without(sc: Scenario, drop: set[int], gone: set[str] = frozenset()) -> Scenario:  # type: ignore[assignment]
    """Steps ``drop`` removed, and with them every step of the processes ``gone`` and of the
    children those and the dropped forks make."""
    roots = set(gone) | {sc.steps[i].child for i in drop if isinstance(sc.steps[i], Fork)}  # type: ignore[union-attr]
    gone = _descendants(sc.steps, roots) if roots else set()
    steps = tuple(s for i, s in enumerate(sc.steps)
                  if i not in drop and step_process(s) not in gone)
    return sc._replace(steps=steps)


# -- passes: each yields candidates, smallest change last ---------------------------------------

def drop_steps(sc: Scenario) -> Iterator[Scenario]:
    n = len(sc.steps)
    size = n
    while size >= 1:
        for start in range(n - size, -1, -size):
            yield _without(sc, set(range(start, start + size)))
        if size == 1:
            break
        size //= 2


def _renamed(s: Step, old: str, new: str) -> Step:
    if isinstance(s, (Mprotect, Munmap, Madvise, Mremap)):
        return s._replace(target=s.target._replace(process=new)) if s.target.process == old else s
    if isinstance(s, Fork):
        return s._replace(process=new if s.process == old else s.process,
                          child=new if s.child == old else s.child)
    return s._replace(process=new) if s.process == old else s  # type: ignore[union-attr]


def skip_generations(sc: Scenario) -> Iterator[Scenario]:
    """A fork dropped and the child's steps done by its parent instead (whose own steps after
    the fork are dropped): shorter lineages."""
    for i, s in enumerate(sc.steps):
        if not isinstance(s, Fork):
            continue
        parent, child = s.process, s.child
        # the parent's later steps go, and with them the processes it forks later
        steps: list[Step] = list(sc.steps[:i])
        gone: set[str] = set()
        for t in sc.steps[i + 1:]:
            who = step_process(t)
            if who == parent or who in gone:
                if isinstance(t, Fork):
                    gone.add(t.child)
                continue
            steps.append(_renamed(t, child, parent))
        yield sc._replace(steps=tuple(steps))


def drop_processes(sc: Scenario) -> Iterator[Scenario]:
    if len(sc.processes) < 2:
        return
    for p in sc.processes:
        rest = tuple(q for q in sc.processes if q is not p)
        yield _without(sc._replace(processes=rest), set(), {p.name})


def _with_vmas(sc: Scenario, i: int, vmas: tuple[VmaSpec, ...]) -> Scenario:
    procs = list(sc.processes)
    procs[i] = procs[i]._replace(vmas=vmas)
    return sc._replace(processes=tuple(procs))


def drop_vmas(sc: Scenario) -> Iterator[Scenario]:
    for i, p in enumerate(sc.processes):
        for j in range(len(p.vmas)):
            yield _with_vmas(sc, i, p.vmas[:j] + p.vmas[j + 1:])


def _pages(v: VmaSpec) -> int:
    return (v.end - v.start) >> PAGE_SHIFT


def plainer_vmas(v: VmaSpec) -> Iterator[VmaSpec]:
    """Simpler versions of one layout VMA."""
    size = _pages(v)
    for flag in sorted(v.flags):
        yield v._replace(flags=v.flags - {flag})
    if v.shared:
        yield v._replace(shared=False)
    if v.file is not None:
        yield v._replace(file=None)
    if v.anon_vma is not None:
        yield v._replace(anon_vma=None)
    if v.faulted:
        offsets = tuple(range(size)) if v.pages is None else v.pages
        if not offsets:
            yield v._replace(faulted=False, pages=None, anon_vma=None)
        for k in range(len(offsets) - 1, -1, -1):
            yield v._replace(pages=offsets[:k] + offsets[k + 1:])
    if size > 1:
        pages = None if v.pages is None else tuple(o for o in v.pages if o < size - 1)
        yield v._replace(end=v.end - (1 << PAGE_SHIFT), pages=pages)
        pages = None if v.pages is None else tuple(o - 1 for o in v.pages if o > 0)
        yield v._replace(start=v.start + (1 << PAGE_SHIFT), pages=pages)
    if v.prot != RW:
        yield v._replace(prot=RW)


def simplify_vmas(sc: Scenario) -> Iterator[Scenario]:
    for i, p in enumerate(sc.processes):
        for j, v in enumerate(p.vmas):
            for w in plainer_vmas(v):
                if w.pages is not None and not w.faulted:
                    continue
                yield _with_vmas(sc, i, p.vmas[:j] + (w,) + p.vmas[j + 1:])


def _narrower(t: Target) -> Iterator[Target]:
    if t.vma is not None or t.end is None or t.end - t.first <= 1 << PAGE_SHIFT:
        return
    yield t._replace(end=t.end - (1 << PAGE_SHIFT))
    yield t._replace(first=t.first + (1 << PAGE_SHIFT))


def plainer_steps(s: Step) -> Iterator[Step]:
    if isinstance(s, Mprotect):
        for t in _narrower(s.target):
            yield s._replace(target=t)
        for prot in (RW, R):
            if s.prot != prot:
                yield s._replace(prot=prot)
    elif isinstance(s, (Munmap, Madvise)):
        for t in _narrower(s.target):
            yield s._replace(target=t)
    elif isinstance(s, Mmap):
        for w in plainer_vmas(s.vma):
            yield s._replace(vma=w)
    elif isinstance(s, Mremap) and s.new_pages is not None:
        yield s._replace(new_pages=None)


def simplify_steps(sc: Scenario) -> Iterator[Scenario]:
    for i, s in enumerate(sc.steps):
        for t in plainer_steps(s):
            yield sc._replace(steps=sc.steps[:i] + (t,) + sc.steps[i + 1:])


# -- removing one page column everywhere --------------------------------------------------------

def _col_range(start: int, end: int, col: int) -> tuple[int, int]:
    """A byte range with page ``col`` taken out of the address space."""
    s, e = start >> PAGE_SHIFT, end >> PAGE_SHIFT
    return (s - (s > col)) << PAGE_SHIFT, (e - (e > col)) << PAGE_SHIFT


def _col_vma(v: VmaSpec, col: int) -> VmaSpec | None:
    start, end = _col_range(v.start, v.end, col)
    if start == end:
        return None
    pages = v.pages
    if pages is not None:
        first, new_first = v.start >> PAGE_SHIFT, start >> PAGE_SHIFT
        pages = tuple(first + o - (first + o > col) - new_first for o in pages if first + o != col)
    return v._replace(start=start, end=end, pages=pages)


def _col_step(s: Step, col: int) -> Step | None:
    if isinstance(s, (Mprotect, Munmap, Madvise)):
        t = s.target
        if t.vma is not None or t.end is None:
            return s
        first, end = _col_range(t.first, t.end, col)
        return None if first == end else s._replace(target=t._replace(first=first, end=end))
    if isinstance(s, Fault) and s.addr is not None:
        page = s.addr >> PAGE_SHIFT
        if page == col:
            return None
        return s._replace(addr=(page - (page > col)) << PAGE_SHIFT)
    if isinstance(s, Mremap):
        t = s.target
        if t.vma is not None or t.end is None or s.to is None:
            return s
        first, end = _col_range(t.first, t.end, col)
        to, to_end = _col_range(s.to, s.to + ((s.new_pages or 1) << PAGE_SHIFT), col)
        if first == end or to == to_end:
            return None
        new = (to_end - to) >> PAGE_SHIFT
        return s._replace(target=t._replace(first=first, end=end), to=to,
                          new_pages=None if new == (end - first) >> PAGE_SHIFT else new)
    if isinstance(s, Mmap):
        v = _col_vma(s.vma, col)
        return None if v is None else s._replace(vma=v)
    return s


def _columns(sc: Scenario) -> list[int]:
    pages: set[int] = set()
    for p in sc.processes:
        for v in p.vmas:
            pages.update(range(v.start >> PAGE_SHIFT, v.end >> PAGE_SHIFT))
    for s in sc.steps:
        if isinstance(s, Mmap):
            pages.update(range(s.vma.start >> PAGE_SHIFT, s.vma.end >> PAGE_SHIFT))
        if isinstance(s, Mremap) and s.to is not None:
            pages.update(range(s.to >> PAGE_SHIFT, (s.to >> PAGE_SHIFT) + (s.new_pages or 1)))
    if not pages:
        return []
    return list(range(max(pages), 15, -1))   # page 16 = 0x10000 is the window's first


def remove_columns(sc: Scenario) -> Iterator[Scenario]:
    for col in _columns(sc):
        procs = []
        for p in sc.processes:
            vmas = tuple(w for w in (_col_vma(v, col) for v in p.vmas) if w is not None)
            procs.append(p._replace(vmas=vmas))
        steps = tuple(t for t in (_col_step(s, col) for s in sc.steps) if t is not None)
        yield sc._replace(processes=tuple(procs), steps=steps)


PASSES: tuple[Callable[[Scenario], Iterator[Scenario]], ...] = (
    drop_steps, skip_generations, drop_processes, drop_vmas, simplify_vmas, simplify_steps, remove_columns)


def _key(sc: Scenario) -> tuple[object, ...]:
    return (sc.processes, sc.steps)


def shrink(sc: Scenario, judge: Judge, verdict: Verdict, target: str | None,
           max_evals: int = MAX_EVALS) -> tuple[Scenario, Verdict]:
    """The smallest scenario the passes reach from ``sc`` that is still a finding, with
    ``target`` (one part of a signature) in its signature when given."""
    best, best_v = sc, verdict
    tried: set[tuple[object, ...]] = {_key(sc)}
    evals = 0
    progress = True
    while progress and evals < max_evals:
        progress = False
        for make in PASSES:
            again = True
            while again and evals < max_evals:
                again = False
                for cand in make(best):
                    key = _key(cand)
                    if key in tried or not cand.processes:
                        continue
                    tried.add(key)
                    evals += 1
                    v = judge.keeps(cand, target)
                    if v is not None:
                        best, best_v = cand, v
                        again = progress = True
                        break
                    if evals >= max_evals:
                        break
    return best, best_v


def size(sc: Scenario) -> tuple[int, int, int, int]:
    """(steps, starting VMAs, processes ever, written pages): what shrinking makes smaller."""
    vmas = sum(len(p.vmas) for p in sc.processes)
    forks = sum(isinstance(s, Fork) for s in sc.steps)
    pages = sum(isinstance(s, Fault) for s in sc.steps) + sum(
        (_pages(v) if v.pages is None else len(v.pages))
        for p in sc.processes for v in p.vmas if v.faulted)
    return len(sc.steps), vmas, len(sc.processes) + forks, pages

