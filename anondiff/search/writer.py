"""A shrunk finding as an ordinary scenario file, readable and pinned by expectations.

Readability passes, each kept only if the finding survives it unchanged (same signature,
re-judged; the final text is judged again after ``anondiff.scenario.loads``):

1. names: starting processes P, Q, ...; children by generation C, G, H, I, ... (C2, G2 for
   siblings); starting VMAs SRC1, SRC2, ... in address order, mapped ones NEW1, NEW2, ...; the
   shared anon_vma label AV0;
2. pieces: what mprotect, munmap or madvise splits off continues the SRC numbering;
3. DST names: the last fork names its child's copies DST1, DST2, ... in address order;
4. VMA targets: an address range or fault address that lies inside one VMA that has the same
   name and range under every policy becomes ``P/SRC1, offset: .., pages: ..``, and writes
   following each other into one VMA become one ``write: P/SRC1, pages: [..]`` (``all``
   when that is every page).

The description says what differs (or what broke), and ``expect:`` clauses pin it: each holds
for its policy and, for a difference, fails for the other one.
"""
from __future__ import annotations

import re

from ..diff import SnapshotDiff
from ..expect import check
from ..scenario import (PAGE_SHIFT, Exit, Expectation, Fault, Fork, Madvise, Mmap, Mprotect,
                        Mremap, Munmap, ProcessSpec, Scenario, Snapshot, Step, Target, loads)
from ..topology import Topology
from .emit import to_yaml
from .judge import INFORMATIONAL, Judge, Verdict

#: Names of forked processes by generation (1 = a child of a starting process).
GENERATIONS = "CGHIJKLMNOTUWXYZ"
#: Starting processes, in order.
STARTERS = "PQRSAB"
#: VMAs pinned by one expectation clause at most.
MAX_PINNED = 8


class WriteError(Exception):
    """The written scenario does not replay to the finding (a bug in the writer)."""


# -- pass 1: names ------------------------------------------------------------------------------

def _rename_step(s: Step, procs: dict[str, str], vmas: dict[str, str]) -> Step:
    if isinstance(s, Fork):
        return s._replace(process=procs[s.process], child=procs[s.child])
    if isinstance(s, (Exit, Fault)):
        return s._replace(process=procs[s.process])
    if isinstance(s, (Mprotect, Munmap, Madvise, Mremap)):
        return s._replace(target=s.target._replace(process=procs[s.target.process]))
    if isinstance(s, Mmap):
        return s._replace(process=procs[s.process], vma=s.vma._replace(name=vmas[s.vma.name]))
    return s


def readable_names(sc: Scenario) -> Scenario:
    """Processes, VMAs and labels renamed as the thread names them."""
    procs: dict[str, str] = {}
    taken: set[str] = set()

    def take(base: str) -> str:
        name, n = base, 1
        while name in taken:
            n += 1
            name = f"{base}{n}"
        taken.add(name)
        return name

    generation: dict[str, int] = {}
    for i, p in enumerate(sc.processes):
        procs[p.name] = take(STARTERS[i] if i < len(STARTERS) else f"P{i}")
        generation[p.name] = 0
    for s in sc.steps:
        if isinstance(s, Fork):
            g = generation[s.process] + 1
            generation[s.child] = g
            procs[s.child] = take(GENERATIONS[g - 1] if g <= len(GENERATIONS) else f"C{g}")
    vmas: dict[str, str] = {}
    labels: dict[str, str] = {}
    n = 0
    processes = []
    for p in sc.processes:
        specs = []
        for v in p.vmas:
            n += 1
            vmas[v.name] = f"SRC{n}"
            label = None
            if v.anon_vma is not None:
                label = labels.setdefault(v.anon_vma, "AV0" if not labels else
                                          f"AV0{procs[p.name]}")
            specs.append(v._replace(name=vmas[v.name], anon_vma=label))
        processes.append(ProcessSpec(procs[p.name], tuple(specs)))
    m = 0
    for s in sc.steps:
        if isinstance(s, Mmap):
            m += 1
            vmas[s.vma.name] = f"NEW{m}"
    steps = tuple(_rename_step(s, procs, vmas) for s in sc.steps)
    return sc._replace(processes=tuple(processes), steps=steps)


# -- passes 2 and 3: DST names and VMA targets --------------------------------------------------

def _states(sc: Scenario, judge: Judge) -> list[list[Topology]] | None:
    """For each policy, the topology before each step and after the last (``[i]`` is the
    state step i starts from); None when a replay stops at a crash before the last step."""
    steps: list[Step] = []
    for i, s in enumerate(sc.steps):
        steps.append(Snapshot(f"before{i}"))
        steps.append(s)
    reps = judge.replays(sc._replace(steps=tuple(steps)))
    if reps is None:
        return None
    out = []
    for r in reps:
        if len(r.snapshots) != len(sc.steps) + 1:
            return None
        out.append(list(r.snapshots))
    return out


def piece_names(sc: Scenario, judge: Judge) -> Scenario:
    """The pieces an mprotect, munmap or madvise splits off are named like the layout's VMAs
    (SRC3, SRC4, ... continuing its numbering) instead of ``SRC1.1``, when every policy makes
    the same pieces."""
    states = _states(sc, judge)
    if states is None:
        return sc
    n = sum(len(p.vmas) for p in sc.processes)
    steps = list(sc.steps)
    for i, s in enumerate(sc.steps):
        if not isinstance(s, (Mprotect, Munmap, Madvise)) or s.names:
            continue
        proc = s.target.process
        made = set()
        for st in states:
            before = {v.name for v in st[i].process(proc).vmas}
            made.add(tuple(v.name for v in st[i + 1].process(proc).vmas if v.name not in before))
        if len(made) != 1:
            continue
        pieces = made.pop()
        if not pieces or not all(re.fullmatch(r".+\.[0-9]+", p) for p in pieces):
            continue
        names = tuple(f"SRC{n + k}" for k in range(1, len(pieces) + 1))
        n += len(pieces)
        steps[i] = s._replace(names=names)
    return sc._replace(steps=tuple(steps))


def _before_each_step(sc: Scenario, judge: Judge) -> list[list[Topology]] | None:
    """For each policy, the topology before each step."""
    states = _states(sc, judge)
    return None if states is None else [st[:-1] for st in states]


def _stable_vma(topos: list[Topology], process: str, page: int):  # type: ignore[no-untyped-def]
    """The VMA of ``process`` containing ``page`` if every policy has it, by the same name over
    the same range."""
    found = None
    for t in topos:
        try:
            proc = t.process(process)
        except KeyError:
            return None
        hit = [v for v in proc.vmas if v.start >> PAGE_SHIFT <= page < v.end >> PAGE_SHIFT]
        if not hit:
            return None
        v = hit[0]
        if found is not None and (v.name, v.start, v.end) != (found.name, found.start, found.end):
            return None
        found = v
    return found


def dst_names(sc: Scenario, judge: Judge) -> Scenario:
    """The last fork names the child's copies DST1, DST2, ... (when its parent's VMAs are the
    same under every policy)."""
    forks = [i for i, s in enumerate(sc.steps) if isinstance(s, Fork)]
    if not forks:
        return sc
    i = forks[-1]
    fork = sc.steps[i]
    assert isinstance(fork, Fork)
    before = _before_each_step(sc._replace(steps=sc.steps[:i + 1]), judge)
    if before is None:
        return sc
    views = []
    for snaps in before:
        try:
            views.append(tuple((v.name, v.start, v.end) for v in snaps[i].process(fork.process).vmas
                               if "dontcopy" not in v.flags))
        except KeyError:
            return sc
    if len(set(views)) != 1 or not views[0]:
        return sc
    names = tuple((name, f"DST{n}") for n, (name, _, _) in enumerate(views[0], 1))
    # later steps naming the child's VMAs by address need no change; named ones do not exist yet
    return sc._replace(steps=sc.steps[:i] + (fork._replace(names=names),) + sc.steps[i + 1:])


def vma_targets(sc: Scenario, judge: Judge) -> Scenario:
    before = _before_each_step(sc, judge)
    if before is None:
        return sc
    steps: list[Step] = []
    for i, s in enumerate(sc.steps):
        topos = [b[i] for b in before]
        steps.append(_named(s, topos))
    return sc._replace(steps=tuple(_join_writes(steps)))


def _named(s: Step, topos: list[Topology]) -> Step:
    if isinstance(s, Fault) and s.addr is not None:
        page = s.addr >> PAGE_SHIFT
        v = _stable_vma(topos, s.process, page)
        if v is None:
            return s
        return Fault(s.process, v.name, (page - (v.start >> PAGE_SHIFT),), kind=s.kind)
    if isinstance(s, (Mprotect, Munmap, Madvise, Mremap)) and s.target.vma is None:
        t = s.target
        assert t.end is not None
        first, end = t.first >> PAGE_SHIFT, t.end >> PAGE_SHIFT
        v = _stable_vma(topos, t.process, first)
        if v is None or end > v.end >> PAGE_SHIFT:
            return s
        base = v.start >> PAGE_SHIFT
        named = Target(t.process, v.name, first - base,
                       None if end == v.end >> PAGE_SHIFT else end - base)
        return s._replace(target=named)
    return s


def _join_writes(steps: list[Step]) -> list[Step]:
    out: list[Step] = []
    for s in steps:
        prev = out[-1] if out else None
        if (isinstance(s, Fault) and isinstance(prev, Fault) and s.vma is not None
                and (prev.process, prev.vma, prev.kind) == (s.process, s.vma, s.kind)
                and isinstance(prev.pages, tuple) and isinstance(s.pages, tuple)
                and not set(s.pages) & set(prev.pages)):
            out[-1] = prev._replace(pages=prev.pages + s.pages)
        else:
            out.append(s)
    return out


def whole_writes(sc: Scenario, judge: Judge) -> Scenario:
    """``pages: [0, 1, 2]`` over a whole 3-page VMA reads better as ``pages: all``."""
    before = _before_each_step(sc, judge)
    if before is None:
        return sc
    steps = list(sc.steps)
    for i, s in enumerate(sc.steps):
        if isinstance(s, Fault) and s.vma is not None and isinstance(s.pages, tuple):
            v = before[0][i].vma(f"{s.process}/{s.vma}")
            if s.pages == tuple(range((v.end - v.start) >> PAGE_SHIFT)):
                steps[i] = s._replace(pages="all")
    return sc._replace(steps=tuple(steps))


# -- description and expectations ---------------------------------------------------------------

def _vma_lines(d: SnapshotDiff, limit: int = 6) -> list[str]:
    lines = [f"{v.ref} {v.field}: {v.a} vs {v.b}" for v in d.vmas if v.field != "sharing"]
    lines += [f"{v.ref} {v.field}: {v.a} vs {v.b}" for v in d.vmas if v.field == "sharing"]
    more = len(lines) - limit
    return lines[:limit] + ([f"and {more} more"] if more > 0 else [])


def describe(v: Verdict, difference: bool, origin: str) -> str:
    finals = [r.final for r in v.replays]
    origin = f"Kind: {', '.join(v.signature)}.  {origin}"
    if difference:
        a, b = finals
        assert v.diff is not None
        d = v.diff
        parts = _vma_lines(d)
        if d.findings_only_a:
            parts.append(f"only under {a.policy}: " + ", ".join(d.findings_only_a))
        if d.findings_only_b:
            parts.append(f"only under {b.policy}: " + ", ".join(d.findings_only_b))
        if not parts:
            parts = [f"{t.what}: {t.a} vs {t.b}" for t in d.totals]
        head = f"{a.policy} and {b.policy} differ after the last step: "
        return head + "; ".join(parts) + ".\n" + origin
    parts = []
    for t in finals:
        seen: set[str] = set()
        for f in t.findings:
            if f.kind in INFORMATIONAL or f.kind in seen:
                continue
            seen.add(f.kind)
            at = f"step {f.step}" if f.step else "the starting layout"
            parts.append(f"under {t.policy}, {f.kind} {f.where} at {at}: {f.detail}")
    return "Broken: " + "; ".join(parts) + ".\n" + origin


def _clauses(t: Topology, refs: list[str], d: SnapshotDiff | None) -> list[Expectation]:
    pol = (t.policy,)
    out: list[Expectation] = []
    fields = {} if d is None else {(x.ref, x.field) for x in d.vmas}
    av = [(r, t.vma(r).anon_vma) for r in refs
          if (r, "anon_vma") in fields or (r, "sharing") in fields][:MAX_PINNED]
    if av:
        out.append(Expectation("anon_vma", tuple(av), pol))
    ch = [(r, t.vma(r).chain) for r in refs if (r, "chain") in fields][:MAX_PINNED]
    if ch:
        out.append(Expectation("chain", tuple(ch), pol))
    kinds = []
    for f in t.findings:
        if f.kind not in INFORMATIONAL and f.kind not in kinds:
            kinds.append(f.kind)
    out.append(Expectation("findings", tuple(kinds), pol) if kinds
               else Expectation("no_findings", True, pol))
    return out


def expectations(v: Verdict, difference: bool) -> tuple[Expectation, ...]:
    finals = [r.final for r in v.replays]
    if not difference:
        return tuple(Expectation("findings", tuple(_kinds(t)), (t.policy,))
                     for t in finals if _kinds(t))
    d = v.diff
    assert d is not None
    a, b = finals
    out: list[Expectation] = []
    for mine, other in ((a, b), (b, a)):
        refs = [f"{p.name}/{x.name}" for p in mine.processes for x in p.vmas]
        for e in _clauses(mine, refs, d):
            if not check(e, mine)[0]:
                continue
            # pin the difference: a clause that holds for both policies says nothing
            if check(e, other._replace(policy=mine.policy))[0] and e.kind != "no_findings":
                continue
            out.append(e)
    return tuple(out)


def _kinds(t: Topology) -> list[str]:
    out: list[str] = []
    for f in t.findings:
        if f.kind not in INFORMATIONAL and f.kind not in out:
            out.append(f.kind)
    return out


# -- the whole writer ---------------------------------------------------------------------------

def _judged(text: str, judge: Judge) -> Verdict | None:
    try:
        sc = loads(text, "found.yaml")
    except Exception:
        return None
    return judge.judge(sc)


def write(sc: Scenario, verdict: Verdict, judge: Judge, policy_specs: list[str],
          origin: str) -> str:
    """The scenario file for a shrunk finding (``verdict`` is ``sc``'s)."""
    want = verdict.signature
    candidates = [sc]
    named = readable_names(sc)
    candidates.insert(0, named)
    for make in (piece_names, dst_names, vma_targets, whole_writes):
        better = make(candidates[0], judge)
        if better is not candidates[0]:
            check_v = judge.judge(better)
            if check_v is not None and check_v.signature == want:
                candidates.insert(0, better)
    for cand in candidates:
        v = judge.judge(cand)
        if v is None or v.signature != want:
            continue
        full = cand._replace(description=describe(v, judge.difference, origin),
                             expectations=expectations(v, judge.difference))
        text = to_yaml(full, policy_specs)
        back = _judged(text, judge)
        if back is not None and back.signature == want:
            return text
    raise WriteError("the written scenario does not replay to the finding")


__all__ = ["write", "to_yaml", "readable_names", "WriteError"]
