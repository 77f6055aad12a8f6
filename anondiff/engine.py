"""Replay a scenario under one policy: starting layout, then every step, with the invariants
checked after each; the result is a :class:`~anondiff.topology.Replay` of frozen snapshots.

This module turns scenario names and byte ranges into kernel calls and names the VMA pieces; the
kernel decisions themselves are in :mod:`anondiff.kernel` and the policy.
"""
from __future__ import annotations

import gc
import os
from contextlib import contextmanager
from typing import Final, Iterable, Iterator, NamedTuple, Sequence, cast

from .errors import ReplayError

try:
    from mypy_extensions import mypyc_attr
except ImportError:                  # no mypy (so nothing compiled): a no-op
    from ._compiled import mypyc_attr  # type: ignore[assignment]
from .kernel import checks as checks_mod
from .kernel.fork import ABSENT, dup_mmap
from .kernel.merge import merge_existing, merge_new
from .kernel.expand import ExpandError, brk, expand_downwards, growsdown_above
from .kernel.mremap import MremapError
from .kernel.mremap import mremap as do_mremap
from .kernel.mm import (VM_NORESERVE, change_vmas, do_munmap, dup_mm_failed, exit_mmap,
                        mprotect_flags, split_vma, write_fault)
from .kernel.objects import (VM_ACCOUNT, VM_DONTCOPY, VM_SHARED, VM_WIPEONFORK, AnonVma, Mm, ShmemFile,
                             Vma)
from .kernel.snapshot import freeze
from .kernel.state import Enomem, Kernel, KernelCrash
from .policies import get as get_policy
from . import progress as _progress
from .progress import EVERY, bar
from .policies.base import Policy
from .scenario import MAX_FAULT_ALL_PAGES as MAX_FAULT_ALL
from .scenario import (PAGE_SHIFT, PROT_BITS, Exit, Fault, Fork, Madvise, Merge, Mmap, Mprotect,
                       Munmap, Scenario, SetFlags, Snapshot, Split, Step, Target, VmaSpec)
from .scenario import TASK_SIZE, Brk, FailNth, Mremap, Spawn
from .topology import Finding, Replay, Topology


#: VMA flags whose merge rules differ by era (anondiff.kernel.merge): a kernel-tree policy does
#: not state its era's rules for them yet

ADVICE_FLAGS = {
    "dontfork": (VM_DONTCOPY, True),
    "dofork": (VM_DONTCOPY, False),
    "wipeonfork": (VM_WIPEONFORK, True),
    "keeponfork": (VM_WIPEONFORK, False),
}


#: How the invariants are checked after each step: ``"incremental"`` re-checks only what the
#: step touched (:class:`~anondiff.kernel.checks.IncrementalChecks`); ``"full"`` recounts
#: everything (:func:`~anondiff.kernel.checks.check`), the reference the incremental checks are
#: tested against.  Both give the same findings; ``ANONDIFF_FULL_CHECKS=1`` in the environment
#: makes ``"full"`` the default (a debug switch).
CHECKS = ("incremental", "full")


def default_checks() -> str:
    return "full" if os.environ.get("ANONDIFF_FULL_CHECKS", "") not in ("", "0") else "incremental"


def replay(scenario: Scenario, policy: Policy | str, checks: str | None = None,
           snapshots: bool = True) -> Replay:
    """Replay ``scenario`` under ``policy`` (a Policy or a registered name), checking the
    invariants after every step (``checks``: one of :data:`CHECKS`, default
    :func:`default_checks`).  ``snapshots=False`` skips the scenario's ``snapshot`` steps: the
    Replay then holds the final topology alone (its findings are the same)."""
    if isinstance(policy, str):
        policy = get_policy(policy)
    r = _Replayer(scenario, policy, checks, snapshots)
    with r.no_gc():
        out = r.replay()
        r.teardown()
    return out


class Outcome(NamedTuple):
    """What :func:`findings_many` gives for one scenario under one policy: the findings of the
    final snapshot (the same as ``replay(...).final.findings``), without the snapshot."""

    scenario: Scenario
    policy: str
    findings: tuple[Finding, ...]
    crashed: bool


def findings_many(scenarios: Iterable[Scenario], policies: Sequence[Policy | str],
                  checks: str | None = None) -> Iterator[Outcome]:
    """:func:`replay_many` for a search that only needs the findings: no topology is frozen
    (a third of the time of a small replay).  Replay the interesting ones again with
    :func:`replay` to see them."""
    for r in _replayers(scenarios, policies, checks, snapshots=False):
        r.steps()
        yield Outcome(r.sc, r.policy.name, r.current_findings(), r.crashed)


def replay_many(scenarios: Iterable[Scenario], policies: Sequence[Policy | str],
                checks: str | None = None, snapshots: bool = True) -> Iterator[Replay]:
    """Replay every scenario under every policy (for each scenario, the policies in order),
    lazily: the fast way to replay many small scenarios, e.g. random ones in a search.

    Policies are resolved once, and the cyclic garbage collector runs once per batch of replays
    instead of being switched off and on around each one.  Each Replay is what :func:`replay`
    gives for the same arguments.  ``make bench`` measures its rate on random scenarios of 20
    to 60 steps::

        from anondiff.engine import replay_many
        for rep in replay_many(scenarios, ["split-counters", "degree"], snapshots=False):
            if any(f.kind.startswith("I") for f in rep.final.findings): ...
    """
    for r in _replayers(scenarios, policies, checks, snapshots):
        yield r.replay()


def _replayers(scenarios: Iterable[Scenario], policies: Sequence[Policy | str],
               checks: str | None, snapshots: bool) -> Iterator[_Replayer]:
    """A replayer per scenario and policy, torn down once the caller is done with it; the
    policies resolved once, the cyclic garbage collector run once per 256 replays."""
    resolved = [get_policy(p) if isinstance(p, str) else p for p in policies]
    checks = default_checks() if checks is None else checks
    done = 0
    with _Replayer.no_gc():
        for sc in scenarios:
            for policy in resolved:
                r = _Replayer(sc, policy, checks, snapshots)
                yield r
                r.teardown()
                done += 1
                if done % 256 == 0:
                    # the young generation only: what the batch left (the model's own
                    # objects are freed by teardown(); a policy of the user's may leave
                    # cycles); a full collection would walk the caller's objects too, the
                    # scenarios among them, every time
                    gc.collect(0)


def _vma_from_spec(mm: Mm, spec: VmaSpec) -> Vma:
    flags = spec.flags
    if spec.shared:
        flags = flags | _SHARED
    # VM_ACCOUNT for a private mapping that is writable, or (in a starting layout) faulted: its
    # pages were written, so it was writable once (a forced write being the rare exception).
    # MAP_NORESERVE: accountable_mapping() wants (flags & (VM_NORESERVE | VM_SHARED |
    # VM_WRITE)) == VM_WRITE
    elif ("write" in spec.prot or spec.faulted) and VM_NORESERVE not in spec.flags:
        flags = flags | _ACCOUNT
    start = spec.start >> PAGE_SHIFT
    # Anonymous mappings get vm_pgoff = addr >> PAGE_SHIFT; file mappings are modelled as mapped
    # at the file offset equal to their address, which keeps pieces of one mapping linear, unless
    # the scenario states the file offset (``offset:``).
    pgoff = start if spec.offset is None else spec.offset >> PAGE_SHIFT
    file: str | ShmemFile | None = spec.file
    if spec.shared and file is None:
        file = ShmemFile(spec.name)
    return Vma(mm, start, spec.end >> PAGE_SHIFT, pgoff, spec.prot, flags, file, spec.name)


_SHARED: Final = frozenset({VM_SHARED})
_ACCOUNT: Final = frozenset({VM_ACCOUNT})


def _advised(vma: Vma, flag: str, on: bool) -> tuple[frozenset[str], frozenset[str]]:
    """madvise_update_vma()'s new (prot, flags): ``flag`` set or cleared."""
    if (flag in vma.flags) == on:
        return vma.prot, vma.flags      # nothing changes (and no set is made)
    return vma.prot, (vma.flags | {flag}) if on else (vma.flags - {flag})


#: what :meth:`_Replayer.do` does with a step, by the step's class
_FAULT: Final = 0
_MPROTECT: Final = 1
_MMAP: Final = 2
_SNAPSHOT: Final = 3
_FORK: Final = 4
_EXIT: Final = 5
_MADVISE: Final = 6
_MUNMAP: Final = 7
_SPLIT: Final = 8
_SETFLAGS: Final = 9
_MERGE: Final = 10
_MREMAP: Final = 11
_BRK: Final = 12
_FAILNTH: Final = 13
_SPAWN: Final = 14
_STEP_KIND: Final[dict[type, int]] = {
    Fault: _FAULT, Mprotect: _MPROTECT, Mmap: _MMAP, Snapshot: _SNAPSHOT, Fork: _FORK,
    Exit: _EXIT, Madvise: _MADVISE, Munmap: _MUNMAP, Split: _SPLIT, SetFlags: _SETFLAGS,
    Merge: _MERGE, Mremap: _MREMAP, Brk: _BRK, FailNth: _FAILNTH, Spawn: _SPAWN,
}


def _step_kind(step: Step) -> int:
    """The kind of a step whose class is not one of :data:`_STEP_KIND`'s: a subclass of one of
    them (the loader makes none, a caller may), or -1."""
    for cls, kind in _STEP_KIND.items():
        if isinstance(step, cls):
            return kind
    return -1


#: what teardown() points the anon_vmas' root and parent at (not None: they are typed AnonVma,
#: which the compiled model enforces): no longer themselves, so that their cycles are broken
_NOBODY: Final = AnonVma()


@mypyc_attr(allow_interpreted_subclasses=True)     # explain's and --metrics' replayers
class _Replayer:
    def __init__(self, scenario: Scenario, policy: Policy, checks: str | None = None,
                 snapshots: bool = True) -> None:
        self.sc = scenario
        self.policy = policy
        self.k = Kernel(policy)
        checks = default_checks() if checks is None else checks
        if checks not in CHECKS:
            raise ValueError(f"unknown checks: {checks!r} (must be one of {list(CHECKS)})")
        self.checker = checks_mod.IncrementalChecks(self.k) if checks == "incremental" else None
        self.snapshots: list[Topology] = []
        self.findings: list[Finding] = []
        #: violations true now -> index of their finding (a violation that comes back after it
        #: was undone is a new finding)
        self.active: dict[tuple[str, str, str], int] = {}
        self.crashed = False
        self.keep_snapshots = snapshots
        self.step_no = 0
        #: the step being replayed (None: the starting layout), whose line :attr:`line` reads
        self.step: Step | None = None
        #: child name -> line of its fork that failed with -ENOMEM
        self.failed_forks: dict[str, int] = {}

    @property
    def line(self) -> int:
        """The scenario line of the step being replayed (0: the layout).  (Read when a finding
        or an error is made: reading it from every step, a union of record types, would be a
        look-up by name each time.)"""
        return self.step.line if self.step is not None else 0

    def error(self, message: str) -> ReplayError:
        where = f"steps[{self.step_no - 1}]: " if self.step_no else ""
        return ReplayError(self.sc.path, self.line or None, where + message)

    # -- driver ------------------------------------------------------------------------------
    @staticmethod
    @contextmanager
    def no_gc() -> Iterator[None]:
        """The model allocates many small objects that point at each other; the cyclic garbage
        collector would walk them over and over for nothing (nothing here is garbage until the
        replay ends)."""
        enabled = gc.isenabled()
        gc.disable()
        try:
            yield
        finally:
            if enabled:
                gc.enable()

    def run(self) -> Replay:
        with self.no_gc():
            return self.replay()

    def replay(self) -> Replay:
        """:meth:`run` without switching the garbage collector off (the caller did)."""
        self.steps()
        self.checker = None         # its per-VMA state is not needed for the last freeze
        self.snapshots.append(self.freeze("final"))
        return Replay(self.sc.name, self.policy.name, self.policy.cite, tuple(self.snapshots))

    def steps(self) -> None:
        """The layout and every step, each followed by the checks (until a crash)."""
        self.layout()
        self.record()
        # (self.do(), not a bound method in a local: the compiled model calls its own methods
        # directly, a bound method through the interpreter's calling convention)
        # (enumerate() from 0: the compiled model walks the tuple by index, with a start
        # argument it iterates it through the interpreter)
        for i, step in enumerate(self.sc.steps):
            self.step_no, self.step = i + 1, step
            try:
                self.do(step)
            except KernelCrash as crash:
                self.k.event("CRASH", crash.where, str(crash))
                self.crashed = True
            self.record()
            if self.crashed:
                break

    def teardown(self) -> None:
        """Break the model's reference cycles (VMA <-> mm, chain <-> VMA and anon_vma, an
        anon_vma's root and parent links to itself) once the replay is done, so that reference
        counting frees it at once instead of the cyclic collector walking every object of it;
        on a large scenario that walk costs as much as the fork."""
        k = self.k
        for av in k.anon_vmas:
            av.tree.clear()
            av.root = av.parent = _NOBODY
        for mm in k.mms.values():
            for vma in mm.vmas:
                vma.avcs.clear()
                own = vma.anon_vma
                # never linked, so not in anon_vmas: never named (``own.name is None``, without
                # making the name of every named one)
                if own is not None and own.label is None and not own.num:
                    own.tree.clear()
                    own.root = own.parent = _NOBODY
            mm.vmas.clear()
            mm.dirty = None
        k.mms.clear()
        k.anon_vmas.clear()
        k.live.clear()
        self.checker = None

    def current_findings(self) -> tuple[Finding, ...]:
        """Every finding so far, ``active`` saying whether it still holds now."""
        current = set(self.active.values())
        return tuple(
            f if i in current or not f.active else f._replace(active=False)
            for i, f in enumerate(self.findings))

    def freeze(self, label: str) -> Topology:
        return freeze(self.k, self.sc.name, label, self.step_no, self.current_findings(),
                      self.crashed)

    def record(self) -> None:
        """Turn kernel events and newly broken invariants into findings."""
        if self.k.events:
            for ev in self.k.events:
                where = ev.where if isinstance(ev.where, str) else f"{ev.where.mm.name}/{ev.where.name}"
                self.findings.append(Finding(ev.kind, where, ev.detail, self.step_no, self.line,
                                             False))
            self.k.events.clear()
        if self.checker is not None:
            new, gone = self.checker.update()
            for v in gone:
                del self.active[v]
            for v in new:
                self.active[v] = len(self.findings)
                self.findings.append(Finding(*v, self.step_no, self.line, True))
            return
        now = checks_mod.check(self.k)
        seen = set()
        for v in now:
            seen.add(v)
            if v not in self.active:
                self.active[v] = len(self.findings)
                self.findings.append(Finding(*v, self.step_no, self.line, True))
        for v in list(self.active):
            if v not in seen:
                del self.active[v]

    # -- starting layout ---------------------------------------------------------------------
    def layout(self) -> None:
        k = self.k
        for p in self.sc.processes:
            for v in p.vmas:
                if v.anon_vma is not None:
                    k.reserve(v.anon_vma)
        for p in self.sc.processes:
            mm = Mm(p.name)
            k.mms[p.name] = mm
            labelled: dict[str, AnonVma] = {}
            progress = bar(f"laying out {p.name}", len(p.vmas)) \
                if len(p.vmas) >= _progress.THRESHOLD else None   # (no title, no Python call)
            for i, spec in enumerate(p.vmas):
                if progress and not i % EVERY:
                    progress.update(i)
                vma = _vma_from_spec(mm, spec)
                mm.append(vma)
                if not spec.faulted:
                    continue
                av = labelled.get(spec.anon_vma) if spec.anon_vma is not None else None
                if av is None:
                    # a new root, as __anon_vma_prepare() makes it (no neighbour reuse: an
                    # unlabelled faulted VMA has an anon_vma of its own)
                    av = self.policy.new_root_anon_vma(k, spec.anon_vma)
                    if spec.anon_vma is not None:
                        labelled[spec.anon_vma] = av
                self.policy.attach_anon_vma(k, vma, av)
                if spec.pages is None:      # (a loop of its own: no range object iterated)
                    for off in range(vma.end - vma.start):
                        mm.ptes[vma.start + off] = k.new_page(av, vma.pgoff + off)
                else:
                    for off in spec.pages:
                        mm.ptes[vma.start + off] = k.new_page(av, vma.pgoff + off)
            if progress:
                progress.close()

    # -- steps -------------------------------------------------------------------------------
    def do(self, step: Step) -> None:
        # (one dict lookup by class, not a test per kind: the step classes are Python, so each
        # isinstance() of the compiled model would fetch its class from the module first)
        kind = _STEP_KIND.get(type(step))
        if kind is None:
            kind = _step_kind(step)
        if kind == _FAULT:
            self.fault(cast(Fault, step))
        elif kind == _MPROTECT:
            self.mprotect(cast(Mprotect, step))
        elif kind == _MMAP:
            self.mmap(cast(Mmap, step))
        elif kind == _SNAPSHOT:
            if self.keep_snapshots:
                self.record()
                self.snapshots.append(self.freeze(cast(Snapshot, step).label))
        elif kind == _FORK:
            self.fork(cast(Fork, step))
        elif kind == _EXIT:
            process = cast(Exit, step).process
            exit_mmap(self.k, self.mm(process))
            del self.k.mms[process]
        elif kind == _MADVISE:
            self.madvise(cast(Madvise, step))
        elif kind == _MUNMAP:
            self.munmap(cast(Munmap, step))
        elif kind == _SPLIT:
            self.split(cast(Split, step))
        elif kind == _SETFLAGS:
            sf = cast(SetFlags, step)
            vma = self.vma(self.mm(sf.process), sf.vma)
            vma.prot = (vma.prot | (sf.set & set(PROT_BITS))) - sf.clear
            vma.flags = (vma.flags | (sf.set - set(PROT_BITS))) - sf.clear
        elif kind == _MERGE:
            self.merge(cast(Merge, step))
        elif kind == _MREMAP:
            self.mremap(cast(Mremap, step))
        elif kind == _BRK:
            self.brk(cast(Brk, step))
        elif kind == _FAILNTH:
            self.fail_nth(cast(FailNth, step))
        elif kind == _SPAWN:
            process = cast(Spawn, step).process
            if process in self.k.mms:
                raise self.error(f"process {process!r} already exists")
            self.k.mms[process] = Mm(process)
        else:  # pragma: no cover - the loader makes only the kinds above
            raise self.error(f"unknown step {step!r}")

    def mm(self, name: str) -> Mm:
        try:
            return self.k.mms[name]
        except KeyError:
            if name in self.failed_forks:
                raise self.error(f"no process {name!r}: its fork (line {self.failed_forks[name]}) "
                                 "failed with -ENOMEM") from None
            raise self.error(f"no process {name!r} at this point") from None

    def fail_nth(self, step: FailNth) -> None:
        """A step with ``enomem: N`` (see :class:`~anondiff.scenario.FailNth`): arm the
        allocation counter of the kernel model, run the step, and say what came of it."""
        inner = step.step
        k = self.k
        kind = type(inner).__name__.lower()
        target = getattr(inner, "target", None)
        where = target.process if target is not None else inner.process  # type: ignore[union-attr]
        k.arm_enomem(step.nth)
        try:
            _Replayer.do(self, inner)       # one step for subclasses that wrap do() (explain)
        except Enomem as e:
            if isinstance(inner, Fork):
                outcome = (f"fork() returns -ENOMEM; dup_mmap() stopped there and the partly "
                           f"built {inner.child} was torn down")
            elif isinstance(inner, Fault):
                outcome = "the fault returns VM_FAULT_OOM: that page is not written"
            else:
                outcome = f"{kind}() returns -ENOMEM"
            k.event("NOTE", where, f"enomem: {e}: {outcome}")
        finally:
            allocs, failed = k.allocs, k.failed
            k.arm_enomem(0)
        if failed is None:
            k.event("NOTE", where, f"enomem: {step.nth}: the step made {allocs} allocation"
                    f"{'' if allocs == 1 else 's'}; none failed")

    def vma(self, mm: Mm, name: str) -> Vma:
        vma = mm.by_name(name)
        if vma is None:
            known = ", ".join(v.name for v in mm.vmas[:20]) or "none"
            raise self.error(f"no VMA {name!r} in process {mm.name} at this point (it has: {known})")
        return vma

    def fork(self, step: Fork) -> None:
        parent = self.mm(step.process)
        if step.child in self.k.mms:
            raise self.error(f"process {step.child!r} already exists")
        # (None: every copy keeps its parent's name; no dict built, none looked up)
        rename = self.fork_names(parent, step) if step.names else None
        child = Mm(step.child)
        # Registered first: after a crash inside anon_vma_fork() the child stays, with the
        # VMAs copied before the faulting one (as the kernel-runs reference shows it).
        self.k.mms[step.child] = child
        try:
            dup_mmap(self.k, parent, child, rename)
        except Enomem:
            dup_mm_failed(self.k, child)
            self.failed_forks[step.child] = step.line
            raise

    def fork_names(self, parent: Mm, step: Fork) -> dict[str, str]:
        """The child's name of each VMA the fork copies (by the parent's name), as ``names``
        gives them."""
        copied = [v for v in parent.vmas if VM_DONTCOPY not in v.flags]
        rename = {v.name: v.name for v in copied}
        if step.names and isinstance(step.names[0], tuple):
            for old, new in step.names:  # type: ignore[misc]
                if old not in rename:
                    raise self.error(f"names: {step.process} has no VMA {old!r} that fork copies")
                rename[old] = new
        elif step.names:
            if len(step.names) != len(copied):
                raise self.error(f"names: {len(step.names)} names for the {len(copied)} VMAs "
                                 f"fork copies ({', '.join(v.name for v in copied)})")
            rename = {v.name: str(n) for v, n in zip(copied, step.names)}
        # (the parent's own names are distinct, as every step leaves them: only names given
        # can clash)
        if step.names and len(set(rename.values())) != len(rename):
            raise self.error("names: two child VMAs would get the same name")
        return rename

    def fault(self, step: Fault) -> None:
        mm = self.mm(step.process)
        if step.vma is None:
            assert step.addr is not None
            vma = mm.find(step.addr >> PAGE_SHIFT)
            if vma is None and (stack := growsdown_above(mm, step.addr >> PAGE_SHIFT)):
                try:
                    expand_downwards(self.k, stack, step.addr >> PAGE_SHIFT)
                except ExpandError as e:
                    raise self.error(f"the stack {mm.name}/{stack.name} cannot grow down to "
                                     f"{step.addr:#x} ({e}): the kernel would send SIGSEGV") from None
                vma = stack
            if vma is None:
                raise self.error(f"no VMA of {mm.name} at {step.addr:#x}: the kernel would send SIGSEGV")
            pages = [step.addr >> PAGE_SHIFT]
        else:
            vma = self.vma(mm, step.vma)
            size = vma.end - vma.start
            if step.pages == "all":
                if size > MAX_FAULT_ALL:
                    raise self.error(f"faulting all {size} pages of {mm.name}/{vma.name} is not "
                                     "supported; list the page offsets to fault")
                pages = list(range(vma.start, vma.end))
            elif step.pages == "none":
                pages = []
            else:
                bad = [o for o in step.pages if not 0 <= o < size]  # type: ignore[union-attr,operator]
                if bad:
                    raise self.error(f"page offset {bad[0]} is outside {mm.name}/{vma.name} ({size} pages)")
                pages = [vma.start + o for o in step.pages]  # type: ignore[union-attr,operator]
        if VM_SHARED in vma.flags:
            return
        if not pages:
            self.policy.anon_vma_prepare(self.k, vma, mm.prev(vma), mm.next(vma))
        for p in pages:
            write_fault(self.k, vma, p)

    def range(self, target: Target, what: str, whole: bool) -> tuple[Mm, int, int]:
        mm = self.mm(target.process)
        if target.vma is not None:
            vma = self.vma(mm, target.vma)
            size = vma.end - vma.start
            end = size if target.end is None else target.end
            if not 0 <= target.first < end <= size:
                raise self.error(f"{what}: pages [{target.first}, {end}) are not inside "
                                 f"{mm.name}/{vma.name} ({size} pages)")
            start, end = vma.start + target.first, vma.start + end
        else:
            assert target.end is not None
            start, end = target.first >> PAGE_SHIFT, target.end >> PAGE_SHIFT
        if whole:
            at = start
            for vma in mm.overlapping(start, end):
                if vma.start > at:
                    break
                at = vma.end
            if at < end:
                raise self.error(f"{what}: {at << PAGE_SHIFT:#x} in the range is not mapped in "
                                 f"{mm.name}: the kernel returns ENOMEM")
        return mm, start, end

    # (mprotect, munmap and madvise each a method of its own: the compiled model allocates the
    # closure of a function's lambdas whenever it is called, do() being called for every step)
    def mprotect(self, step: Mprotect) -> None:
        mm, start, end = self.range(step.target, "mprotect", whole=True)
        prot = frozenset(step.prot)
        self.reshape(mm, step.names, lambda: change_vmas(
            self.k, mm, start, end, lambda v: mprotect_flags(self.k, v, prot)))

    def munmap(self, step: Munmap) -> None:
        mm, start, end = self.range(step.target, "munmap", whole=False)
        self.reshape(mm, step.names, lambda: do_munmap(self.k, mm, start, end))

    def madvise(self, step: Madvise) -> None:
        flag, on = ADVICE_FLAGS[step.advice]
        if flag == VM_WIPEONFORK and self.policy.dup_mmap.wipeonfork == ABSENT:
            # madvise_behavior_valid() knows MADV_WIPEONFORK and MADV_KEEPONFORK since commit
            # d2cd9ede6e19 ("mm,fork: introduce MADV_WIPEONFORK") (v4.14), and is asked before
            # the range is looked at
            raise self.error(f"madvise(MADV_{step.advice.upper()}) under {self.policy.name}: "
                             "no such advice before v4.14, the kernel returns EINVAL")
        mm, start, end = self.range(step.target, "madvise", whole=True)
        if flag == VM_WIPEONFORK and on:
            for vma in mm.overlapping(start, end):
                if vma.file is not None or VM_SHARED in vma.flags:
                    raise self.error(f"madvise(MADV_WIPEONFORK) on {mm.name}/{vma.name}, a file or "
                                     "shared mapping: the kernel returns EINVAL")

        # (lambdas, no local function: in the compiled model a nested function kept in a local
        # and the environment object holding that local point at each other, a cycle that kept
        # the whole replay alive until the cyclic collector ran)
        self.reshape(mm, step.names, lambda: change_vmas(
            self.k, mm, start, end, lambda v: _advised(v, flag, on)))

    def split(self, step: Split) -> None:
        mm = self.mm(step.process)
        vma = self.vma(mm, step.vma)
        if not 0 < step.at < vma.end - vma.start:
            raise self.error(f"split: page {step.at} is not inside {mm.name}/{vma.name} "
                             f"({vma.end - vma.start} pages)")
        if mm.by_name(step.new) is not None:
            raise self.error(f"split: {mm.name} already has a VMA named {step.new!r}")
        new = split_vma(self.k, vma, vma.start + step.at, step.new_below)
        new.name = step.new

    def merge(self, step: Merge) -> None:
        mm = self.mm(step.process)
        lo, hi = self.vma(mm, step.lo), self.vma(mm, step.hi)
        hi.prot, hi.flags = lo.prot, lo.flags
        if mm.prev(hi) is not lo or lo.end != hi.start:
            # vma_merge() is only ever asked to extend hi's own predecessor: refuse, touch nothing
            self.k.event("MERGE_REFUSED", f"{mm.name}/{lo.name}",
                         f"{hi.name} not merged into {lo.name}: not adjacent")
        elif merge_existing(self.k, hi, hi.start, hi.end, lo.prot, lo.flags, with_next=False) is not lo:
            self.k.event("MERGE_REFUSED", f"{mm.name}/{lo.name}",
                         f"{hi.name} not merged into {lo.name} (not linear, "
                         "or the anon_vma rule refuses)")

    def mmap(self, step: Mmap) -> None:
        mm = self.mm(step.process)
        vma = _vma_from_spec(mm, step.vma)
        hit = mm.overlapping(vma.start, vma.end)
        if hit:
            raise self.error(f"mmap: {step.vma.name} overlaps {mm.name}/{hit[0].name} "
                             "(MAP_FIXED_NOREPLACE semantics: unmap it first)")
        if mm.by_name(vma.name) is not None:
            raise self.error(f"mmap: {mm.name} already has a VMA named {vma.name!r}")
        merged = merge_new(self.k, mm, vma) if step.merge else None
        if merged is None:
            mm.insert(vma)
        else:
            self.k.event("MERGED", f"{mm.name}/{merged.name}",
                         f"mmap of {vma.name} merged into {merged.name}")

    def brk(self, step: Brk) -> None:
        mm = self.mm(step.process)
        if step.name is not None and mm.by_name(step.name) is not None:
            raise self.error(f"brk: {mm.name} already has a VMA named {step.name!r}")
        name = step.name or "heap"
        n = 0
        while step.name is None and mm.by_name(name) is not None:
            n += 1
            name = f"heap.{n}"

        # a lower break unmaps like munmap: a VMA it cuts in two has its pieces named
        self.reshape(mm, (), lambda: self._brk(mm, step, name))

    def _brk(self, mm: Mm, step: Brk, name: str) -> None:
        try:
            brk(self.k, mm, step.start >> PAGE_SHIFT, step.end >> PAGE_SHIFT, name)
        except ExpandError as e:
            raise self.error(f"brk: {e}") from None

    def mremap(self, step: Mremap) -> None:
        mm, start, end = self.range(step.target, "mremap", whole=False)
        old_len = end - start
        new_len = old_len if step.new_pages is None else step.new_pages
        to = None if step.to is None else step.to >> PAGE_SHIFT
        if step.name is not None and mm.by_name(step.name) is not None:
            raise self.error(f"mremap: {mm.name} already has a VMA named {step.name!r}")

        self.reshape(mm, step.names,
                     lambda: self._mremap(mm, step, start, old_len, new_len, to))

    def _mremap(self, mm: Mm, step: Mremap, start: int, old_len: int, new_len: int,
                to: int | None) -> None:
        try:
            done = do_mremap(self.k, mm, start, old_len, new_len, step.flags, to,
                             TASK_SIZE >> PAGE_SHIFT)
        except MremapError as e:
            raise self.error(f"mremap: {e}") from None
        if not done.created:
            return
        # a VMA copy_vma() made: the step's name, else the source's if that is gone
        vma = done.vma
        if step.name is not None:
            vma.name = step.name
        elif any(v.name == vma.name and v is not vma for v in mm.vmas):
            taken = {v.name for v in mm.vmas}
            n = 1
            while f"{vma.name}.{n}" in taken:
                n += 1
            vma.name = f"{vma.name}.{n}"

    def reshape(self, mm: Mm, names: tuple[str, ...], op) -> None:  # type: ignore[no-untyped-def]
        """Run an operation that may split VMAs, then name the pieces: of the VMAs now sharing a
        name, the lowest keeps it and the others take ``names`` in address order, then
        ``<name>.<n>``.  After -ENOMEM the pieces made before it are named too."""
        failed: Enomem | None = None
        inserted = mm.inserted
        try:
            op()
        except Enomem as e:
            failed = e
        if not names and mm.inserted == inserted:
            # no VMA came in (the common case): the names are still distinct, as every step
            # leaves them (only a piece split off or copied comes with a name already taken)
            if failed is not None:
                raise failed
            return
        queue = list(names)
        seen: set[str] = set()
        dups: list[Vma] = []
        for vma in mm.vmas:
            # (one hash operation a VMA: a name seen before leaves the set as large as it was)
            known = len(seen)
            seen.add(vma.name)
            if len(seen) == known:
                dups.append(vma)
        for vma in dups:
            if queue:
                new = queue.pop(0)
                if new in seen:
                    raise self.error(f"names: {mm.name} already has a VMA named {new!r}")
            else:
                n = 1
                new = f"{vma.name}.1"
                while new in seen:
                    n += 1
                    new = f"{vma.name}.{n}"
            vma.name = new
            mm.touch(vma)
            seen.add(new)
        if failed is not None:
            raise failed
        if queue:
            raise self.error(f"names: {len(names)} names given but the step made "
                             f"{len(names) - len(queue)} new VMAs")
