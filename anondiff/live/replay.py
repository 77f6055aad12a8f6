"""``anondiff live``: replay a scenario as real processes and compare every step with a policy.

The prediction after step i is the engine's replay of the first i steps; the live side performs
step i with real syscalls, checks /proc/PID/maps against the predicted layout, captures the real
topology and names it after the prediction (:mod:`anondiff.live.convert`).
"""
from __future__ import annotations

import os
import platform
import re
import time
from typing import NamedTuple, Sequence

from ..engine import replay
from ..errors import AnondiffError, ScenarioError
from ..policies.base import Policy
from ..scenario import (PAGE_SHIFT, Brk, Exit, FailNth, Fault, Fork, Madvise, Merge, Mmap, Mprotect,
                        Mremap, Munmap, Scenario, SetFlags, Snapshot, Spawn, Split, Step, Target,
                        VmaSpec)
from ..topology import Finding, Replay, Topology
from . import convert
from .procs import DriverError, Processes
from .reader import PAGE_SIZE, RawTask, Reader

PROT = {"read": 1, "write": 2, "exec": 4}


class Unsupported(AnondiffError):
    """The scenario needs something a process cannot do (a kernel-internal step)."""


class LiveRun(NamedTuple):
    predicted: Replay
    live: Replay
    #: "file:line: step n: process P: ..." for every layout the maps did not match
    layout: tuple[str, ...]
    #: "after step n: ...: the kernel ..., the policy predicts ..." for every refused step
    #: (``refused`` of :func:`run`) whose outcome on the kernel differs from the policy's
    refusals: tuple[str, ...] = ()


class Refused(NamedTuple):
    """A step the policy refuses with an error the program would see (mremap's errno, brk()
    returning the old break), to be tried on the kernel after step ``after`` of the scenario:
    the kernel must refuse it the same way, changing nothing."""

    after: int
    step: Step
    #: "EINVAL", "EFAULT", "ENOMEM" ...; "old break" for brk
    error: str


_ERRNO = re.compile(r"the kernel returns (E[A-Z]+)")


def refusal(step: Step, message: str) -> str | None:
    """The error a program sees, from the policy's refusal of a mremap or brk step (None: the
    scenario is wrong, or the model cannot say, e.g. where get_unmapped_area() would go)."""
    if isinstance(step, Mremap) and "get_unmapped_area" not in message:
        m = _ERRNO.search(message)
        return m.group(1) if m else None
    if isinstance(step, Brk) and "brk() returns the old break" in message:
        return "old break"
    return None


def supported(sc: Scenario) -> str | None:
    """Why ``sc`` cannot run live, or None."""
    for step in sc.steps:
        kind = type(step).__name__.lower()
        if isinstance(step, FailNth):
            return f"{sc.path}:{step.line}: 'enomem' (fault injection) is not run live (yet)"
        if not isinstance(step, (Fork, Exit, Fault, Mprotect, Munmap, Madvise, Mmap, Snapshot,
                                 Split, SetFlags, Merge, Mremap, Brk, Spawn)):
            return f"{sc.path}:{step.line}: step '{kind}' is not run live (yet)"
        if isinstance(step, (Split, SetFlags, Merge)):
            return f"{sc.path}:{step.line}: step '{kind}' is kernel-internal: no syscall does it alone"
        if isinstance(step, Mmap) and not step.merge:
            return f"{sc.path}:{step.line}: mmap with merge: false (insert_vm_struct()) has no syscall"
    model_only = ("softdirty", "guard", "close")    # states a process cannot set up (yet)
    specs = [v for p in sc.processes for v in p.vmas] + [s.vma for s in sc.steps
                                                          if isinstance(s, Mmap)]
    for v in specs:
        for flag in model_only:
            if flag in v.flags:
                return f"{sc.path}:{v.line}: flag '{flag}' is not set up live (yet)"
    for p in sc.processes:
        for v in p.vmas:
            if v.faulted and v.shared:
                return f"{sc.path}:{v.line}: a faulted shared VMA has no anon_vma to build"
    return None


def _prot(prot: frozenset[str] | tuple[str, ...]) -> int:
    return sum(PROT[b] for b in prot)


def predictions(sc: Scenario, policy: Policy) -> list[Topology]:
    """The policy's topology after the layout and after every step (label "after step n")."""
    out = []
    for i in range(len(sc.steps) + 1):
        t = replay(sc._replace(steps=sc.steps[:i]), policy).final
        # labels pair the snapshots in a comparison: unique, and the scenario line when known
        line = sc.steps[i - 1].line if i else 0
        unique = line and sum(s.line == line for s in sc.steps) == 1
        label = "layout" if i == 0 else f"line {line}" if unique else f"step {i}"
        out.append(t._replace(label=label))
        if t.crashed:
            break
    return out


class _Live:
    """Builds the layout and performs the steps through ``procs`` (the real processes, or the
    reproducer's recorder), and captures through ``reader``."""

    def __init__(self, sc: Scenario, policy: Policy, reader: Reader | None,
                 procs: Processes) -> None:
        self.sc, self.policy, self.reader, self.procs = sc, policy, reader, procs
        self.mms: dict[str, int] = {}
        self.layout_msgs: list[str] = []

    # -- building ----------------------------------------------------------------------------
    def mmap(self, proc: str, spec: VmaSpec, prot: int | None = None) -> None:
        want = _prot(spec.prot)
        # "account": mapped writable and made read-only before the scenario starts
        first = want | 2 if "account" in spec.flags and not spec.shared else want
        self.procs.request(proc, "mmap", start=spec.start, length=spec.end - spec.start,
                           prot=first if prot is None else prot, shared=spec.shared,
                           file=spec.file, offset=_offset(spec))
        if prot is None and first != want:
            self.procs.request(proc, "mprotect", start=spec.start,
                               length=spec.end - spec.start, prot=want)

    def flags(self, proc: str, spec: VmaSpec) -> None:
        for flag, advice in (("dontcopy", "dontfork"), ("wipeonfork", "wipeonfork")):
            if flag in spec.flags:
                self.procs.request(proc, "madvise", start=spec.start,
                                   length=spec.end - spec.start, advice=advice)

    def layout(self) -> None:
        """Faulted VMAs first, then the others: a faulted VMA is mapped writable to be written,
        and mapped next to an unfaulted writable neighbour it would merge with it and lend it
        its anon_vma when mprotect splits them again (an unfaulted rw VMA before a faulted r
        one came out sharing its anon_vma)."""
        for p in self.sc.processes:
            self.procs.start(p.name)
            done: set[str] = set()
            for v in p.vmas:
                if v.name in done or not v.faulted:
                    continue
                group = [v] if v.anon_vma is None else \
                    [x for x in p.vmas if x.anon_vma == v.anon_vma]
                done.update(x.name for x in group)
                self.fault_group(p.name, group)
            for v in p.vmas:
                if v.name in done:
                    continue
                if {"dontcopy", "wipeonfork"} & v.flags:
                    # mapped PROT_NONE, given its madvise flags, then its protection: mapped
                    # as it is, it would merge with a faulted neighbour at once and keep its
                    # anon_vma when madvise split it off again (found by the live machine)
                    self.mmap(p.name, v, prot=0)
                    self.flags(p.name, v)
                    want = _prot(v.prot)
                    first = want | 2 if "account" in v.flags and not v.shared else want
                    for prot in dict.fromkeys((first, want)):
                        self.procs.request(p.name, "mprotect", start=v.start,
                                           length=v.end - v.start, prot=prot)
                    continue
                self.mmap(p.name, v)
                self.flags(p.name, v)

    def fault_group(self, proc: str, group: list[VmaSpec]) -> None:
        """Faulted VMAs sharing one anon_vma: one writable mapping over them all, written, its
        holes unmapped (others' VMAs are mapped there later), then split by mprotect.  While it
        is made writable and written it carries VM_DONTDUMP, which no neighbour has, so it
        merges with none and __anon_vma_prepare() finds no neighbour's anon_vma to reuse: the
        layout's anon_vmas are all new roots, as the engine makes them."""
        start, end = group[0].start, group[-1].end
        files = {v.file for v in group}
        if len(files) != 1:
            raise Unsupported(f"{self.sc.path}:{group[0].line}: VMAs sharing "
                              f"{group[0].anon_vma} mix files")
        if any(_offset(v) - v.start != _offset(group[0]) - start for v in group):
            raise Unsupported(f"{self.sc.path}:{group[0].line}: VMAs sharing "
                              f"{group[0].anon_vma} are not at linear file offsets")
        span = VmaSpec(group[0].name, start, end, frozenset({"read", "write"}), frozenset(),
                       file=group[0].file, offset=group[0].offset)
        # mapped PROT_NONE first: a writable mapping would merge at once with a faulted
        # writable neighbour and take its anon_vma; then VM_DONTDUMP, then writable (which
        # sets VM_ACCOUNT as a writable mmap would)
        self.mmap(proc, span, prot=0)
        self.procs.request(proc, "madvise", start=start, length=end - start, advice="dontdump")
        self.procs.request(proc, "mprotect", start=start, length=end - start, prot=3)
        for v in group:
            offsets = range((v.end - v.start) // PAGE_SIZE) if v.pages is None else v.pages
            addrs = [v.start + o * PAGE_SIZE for o in offsets]
            if addrs:
                self.procs.request(proc, "write", addrs=addrs, writable=True)
            else:
                self.procs.request(proc, "write", addrs=[v.start], writable=True)
                self.procs.request(proc, "madvise", start=v.start, length=PAGE_SIZE,
                                   advice="dontneed")
        at = start
        for v in group + [VmaSpec("", end, end, frozenset(), frozenset())]:
            if v.start > at:
                self.procs.request(proc, "munmap", start=at, length=v.start - at)
            at = v.end
        for v in group:
            self.procs.request(proc, "madvise", start=v.start, length=v.end - v.start,
                               advice="dodump")
        for v in group:
            if v.prot != span.prot:
                self.procs.request(proc, "mprotect", start=v.start, length=v.end - v.start,
                                   prot=_prot(v.prot))
            self.flags(proc, v)

    # -- steps -------------------------------------------------------------------------------
    def target(self, before: Topology, t: Target) -> tuple[int, int]:
        if t.vma is None:
            assert t.end is not None
            return t.first, t.end
        v = before.vma(f"{t.process}/{t.vma}")
        end = v.end if t.end is None else v.start + (t.end << PAGE_SHIFT)
        return v.start + (t.first << PAGE_SHIFT), end

    def step(self, before: Topology, step: Step) -> None:
        if isinstance(step, Fork):
            self.procs.fork(step.process, step.child)
        elif isinstance(step, Exit):
            self.exit(step.process)
        elif isinstance(step, Fault):
            self.fault(before, step)
        elif isinstance(step, Mprotect):
            lo, hi = self.target(before, step.target)
            self.procs.request(step.target.process, "mprotect", start=lo, length=hi - lo,
                               prot=_prot(step.prot))
        elif isinstance(step, Munmap):
            lo, hi = self.target(before, step.target)
            self.procs.request(step.target.process, "munmap", start=lo, length=hi - lo)
        elif isinstance(step, Madvise):
            lo, hi = self.target(before, step.target)
            self.procs.request(step.target.process, "madvise", start=lo, length=hi - lo,
                               advice=step.advice)
        elif isinstance(step, Mmap):
            self.mmap(step.process, step.vma)
            self.flags(step.process, step.vma)
        elif isinstance(step, Mremap):
            self.mremap(before, step)
        elif isinstance(step, Brk):
            self.brk(step)
        elif isinstance(step, Spawn):
            self.procs.start(step.process)
        elif not isinstance(step, Snapshot):  # pragma: no cover - supported() refuses the rest
            raise Unsupported(f"{self.sc.path}:{step.line}: cannot run this step live")

    def mremap(self, before: Topology, step: Mremap) -> None:
        """mremap(2) with the scenario's old range, new size, flags and address: the driver
        leaves get_unmapped_area() only ``to`` for a MREMAP_MAYMOVE move (see driver.do_mremap).
        The policy predicted success (it refuses the scenario otherwise): an error, or a
        mapping the kernel put elsewhere than the old address or ``to``, is reported."""
        lo, hi = self.target(before, step.target)
        new_len = hi - lo if step.new_pages is None else step.new_pages << PAGE_SHIFT
        got = self.procs.request(step.target.process, "mremap", addr=lo, old_len=hi - lo,
                                 new_len=new_len, flags=sorted(step.flags), to=step.to)
        what = f"mremap({lo:#x}, {hi - lo:#x}, {new_len:#x}, [{', '.join(sorted(step.flags))}]" \
            + (f", {step.to:#x})" if step.to is not None else ")")
        if "errno" in got:
            raise DriverError(f"process {step.target.process}: {what}: the kernel returns "
                              f"{got['errno']}, the policy predicts success")
        if "addr" in got and got["addr"] not in (lo, step.to):
            raise DriverError(f"process {step.target.process}: {what}: the kernel moved the "
                              f"mapping to {got['addr']:#x}")

    def brk(self, step: Brk) -> None:
        """brk(2) from ``start`` to ``end`` (the driver puts the break at ``start`` first).
        sys_brk() returns the old break when it refuses; it also does so for a lower break over
        nothing mapped (nothing to unmap: the same outcome as the policy's)."""
        got = self.procs.request(step.process, "brk", start=step.start, end=step.end)
        if "brk" in got and got["brk"] != step.end and not (
                step.end < step.start and got["brk"] == step.start):
            raise DriverError(f"process {step.process}: brk({step.end:#x}) from {step.start:#x}: "
                              f"the kernel left the break at {got['brk']:#x}, the policy "
                              "predicts it moves")

    def try_refused(self, before: Topology, r: Refused) -> str | None:
        """Performs a step the policy refuses; None when the kernel refuses it the same way."""
        step = r.step
        if isinstance(step, Brk):
            got = self.procs.request(step.process, "brk", start=step.start, end=step.end)
            if got["brk"] == step.start:
                return None
            return f"brk({step.end:#x}) from {step.start:#x}: the kernel moved the break to " \
                f"{got['brk']:#x}, the policy predicts it stays"
        assert isinstance(step, Mremap)
        lo, hi = self.target(before, step.target)
        new_len = hi - lo if step.new_pages is None else step.new_pages << PAGE_SHIFT
        got = self.procs.request(step.target.process, "mremap", addr=lo, old_len=hi - lo,
                                 new_len=new_len, flags=sorted(step.flags), to=step.to)
        if got.get("errno") == r.error:
            return None
        what = f"mremap({lo:#x}, {hi - lo:#x}, {new_len:#x}, [{', '.join(sorted(step.flags))}]" \
            + (f", {step.to:#x})" if step.to is not None else ")")
        kernel = f"returns {got['errno']}" if "errno" in got else f"maps it at {got['addr']:#x}"
        return f"{what}: the kernel {kernel}, the policy predicts {r.error}"

    def fault(self, before: Topology, step: Fault) -> None:
        if step.vma is None:
            assert step.addr is not None
            addr = step.addr & ~(PAGE_SIZE - 1)
            v = next(x for x in before.process(step.process).vmas if x.start <= addr < x.end)
            addrs = [addr]
        else:
            v = before.vma(f"{step.process}/{step.vma}")
            n = (v.end - v.start) // PAGE_SIZE
            offsets: Sequence[int] = range(n) if step.pages == "all" else () \
                if isinstance(step.pages, str) else step.pages
            addrs = [v.start + o * PAGE_SIZE for o in offsets]
        if "shared" in v.flags:
            return
        writable = "write" in v.prot
        if addrs:
            self.procs.request(step.process, "write", addrs=addrs, writable=writable)
        elif v.anon_vma is None:
            # __anon_vma_prepare() alone: write a page, then drop it (MADV_DONTNEED keeps the
            # anon_vma)
            self.procs.request(step.process, "write", addrs=[v.start], writable=writable)
            self.procs.request(step.process, "madvise", start=v.start, length=PAGE_SIZE,
                               advice="dontneed")

    def exit(self, name: str) -> None:
        self.procs.exit(name)
        # Its anon_vmas are freed (and reusable by the next fork) only once its mm is torn
        # down: exit_mm() -> mmput() -> exit_mmap() -> unlink_anon_vmas().
        mm = self.mms.pop(name, 0) if self.reader is not None else 0
        deadline = time.monotonic() + 5
        while mm and self.reader is not None and self.reader.mm_users(mm) > 0 \
                and time.monotonic() < deadline:
            time.sleep(0.001)

    # -- capture -----------------------------------------------------------------------------
    def capture(self, pred: Topology, namer: convert.Namer,
                findings: list[Finding], active: dict[tuple[str, str, str], int],
                step_no: int, line: int) -> Topology:
        lo, hi = _range(self.sc, pred)
        names = [p.name for p in pred.processes if p.name in self.procs.pids]
        names += [n for n in self.procs.pids if n not in names]
        tasks: list[RawTask] = []
        for n in names:
            pid = self.procs.pids[n]
            maps = _maps(pid, lo, hi)
            t = self.reader.task(pid, lo, hi)  # type: ignore[union-attr]
            if t.mm:
                self.mms[n] = t.mm
            self.check_layout(pred, n, maps, t, step_no, line)
            tasks.append(t)
        raw_avs = self.reader.anon_vmas(tasks)  # type: ignore[union-attr]
        topo = convert.to_topology(pred, names, tasks, raw_avs, namer, (), _live_name())
        now = convert.check(topo)
        for v in now:
            if v not in active:
                active[v] = len(findings)
                findings.append(Finding(*v, step_no, line, True))
        for v in list(active):
            if v not in now:
                del active[v]
        current = set(active.values())
        return topo._replace(findings=tuple(
            f if i in current or not f.active else f._replace(active=False)
            for i, f in enumerate(findings)))

    def check_layout(self, pred: Topology, name: str, maps: list[tuple[int, int, str]],
                     t: RawTask, step_no: int, line: int) -> None:
        try:
            want = [(v.start, v.end, _perms(v.prot, "shared" in v.flags))
                    for v in pred.process(name).vmas]
        except KeyError:
            want = []
        where = f"{self.sc.path}:{line}: {'layout' if step_no == 0 else f'step {step_no}'}: " \
            f"process {name}"
        if maps != want:
            self.layout_msgs.append(f"{where}: /proc/PID/maps shows {_ranges(maps)}, "
                                    f"the policy predicts {_ranges(want)}")
            return
        for v in t.vmas:
            try:
                pv = next(x for x in pred.process(name).vmas if x.start == v.start)
            except (KeyError, StopIteration):
                continue
            got = [f for f in convert.flags_of(v) if f != "file"]
            exp = [f for f in pv.flags if f != "file"]
            if got != exp:
                self.layout_msgs.append(f"{where}: {pv.name} has flags [{', '.join(got)}], "
                                        f"the policy predicts [{', '.join(exp)}]")


def _offset(spec: VmaSpec) -> int:
    """The file offset a VMA is mapped at (bytes): stated, or its address."""
    return spec.start if spec.offset is None else spec.offset


def file_size(sc: Scenario) -> int:
    """Big enough for every file mapping of the scenario, and for every mremap() that grows one
    (the memfds are sparse).  The model has no end of file: a page past it would be SIGBUS on
    the kernel's side (a file VMA grown by mremap() past a one-page memfd died writing there)."""
    specs = [v for p in sc.processes for v in p.vmas if v.file] + \
        [s.vma for s in sc.steps if isinstance(s, Mmap) and s.vma.file]
    grown = sum(s.new_pages for s in sc.steps if isinstance(s, Mremap) and s.new_pages)
    return max((_offset(v) + v.end - v.start for v in specs), default=0) + (grown << PAGE_SHIFT)


def _range(sc: Scenario, pred: Topology) -> tuple[int, int]:
    starts = [v.start for p in sc.processes for v in p.vmas]
    ends = [v.end for p in sc.processes for v in p.vmas]
    for s in sc.steps:
        if isinstance(s, Mmap):
            starts.append(s.vma.start)
            ends.append(s.vma.end)
        elif isinstance(s, Brk):
            starts.append(min(s.start, s.end))
            ends.append(max(s.start, s.end))
        elif isinstance(s, Mremap) and s.to is not None:
            # (the new length is at most the old range's plus what the VMA grew: any range
            # the kernel maps there overlaps [to, to + 1 page) at least)
            starts.append(s.to)
            ends.append(s.to + PAGE_SIZE)
    for p in pred.processes:
        for v in p.vmas:
            starts.append(v.start)
            ends.append(v.end)
    return min(starts, default=0), max(ends, default=0)


def _perms(prot: tuple[str, ...] | frozenset[str], shared: bool) -> str:
    return "".join(c if b in prot else "-" for c, b in (("r", "read"), ("w", "write"),
                                                           ("x", "exec"))) + ("s" if shared else "p")


def _ranges(rs: list[tuple[int, int, str]]) -> str:
    return ", ".join(f"{a:#x}-{b:#x} {p}" for a, b, p in rs) or "nothing"


def _maps(pid: int, lo: int, hi: int) -> list[tuple[int, int, str]]:
    out = []
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            rng, perms = line.split()[:2]
            a, b = (int(x, 16) for x in rng.split("-"))
            if a < hi and lo < b:
                out.append((a, b, perms))
    return out


def _live_name() -> str:
    return f"live {platform.release()}"


def run(sc: Scenario, policy: Policy, reader: Reader,
        refused: Sequence[Refused] = ()) -> LiveRun:
    """``refused``: steps the policy refuses, each tried on the kernel after its step (before
    the next step runs): a refusal that changes nothing keeps the comparison going; the
    outcome is reported in ``LiveRun.refusals`` when it differs."""
    why = supported(sc)
    if why:
        raise Unsupported(why)
    preds = predictions(sc, policy)
    files: dict[str, int] = {}
    try:
        for f in sorted({v.file for p in sc.processes for v in p.vmas if v.file}
                        | {s.vma.file for s in sc.steps if isinstance(s, Mmap) and s.vma.file}):
            fd = os.memfd_create(f"anondiff-{f}")
            files[f] = fd
            os.ftruncate(fd, file_size(sc))
        namer = convert.Namer(preds)
        findings: list[Finding] = []
        active: dict[tuple[str, str, str], int] = {}
        live: list[Topology] = []
        with Processes(files) as procs:
            lv = _Live(sc, policy, reader, procs)
            try:
                lv.layout()
            except AnondiffError as e:
                raise Unsupported(f"{sc.path}: the starting layout cannot be built: {e}") from None
            live.append(lv.capture(preds[0], namer, findings, active, 0, 0))
            refusals: list[str] = []

            def try_refused(after: int) -> None:
                for r in refused:
                    if r.after == after:
                        why = lv.try_refused(preds[after], r)
                        if why is not None:
                            refusals.append(f"{sc.path}: after step {after}: {why}")
            if lv.layout_msgs:
                raise Unsupported(f"the starting layout cannot be built on this kernel: "
                                  f"{lv.layout_msgs[0]}")
            try_refused(0)
            for i, pred in enumerate(preds[1:], 1):
                step = sc.steps[i - 1]
                try:
                    lv.step(preds[i - 1], step)
                except AnondiffError as e:
                    raise ScenarioError(sc.path, step.line, f"steps[{i - 1}]: {e}") from None
                live.append(lv.capture(pred, namer, findings, active, i, step.line))
                try_refused(i)
        predicted = Replay(sc.name, policy.name, policy.cite, tuple(preds))
        return LiveRun(predicted, Replay(sc.name, _live_name(),
                                         f"Linux {platform.release()} (captured)", tuple(live)),
                       tuple(lv.layout_msgs), tuple(refusals))
    finally:
        for fd in files.values():
            os.close(fd)
