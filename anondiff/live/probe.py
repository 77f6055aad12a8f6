"""``anondiff live --probe``: what an unprivileged process can see of its anon_vmas, compared
with the policy.  No BPF, no root.

Two adjacent private anonymous VMAs with equal flags merge on mprotect() to a common protection
only if their anon_vmas allow it (the same anon_vma, or one without and the other not cloned:
is_mergeable_anon_vma()), and since commit 9b9143298585 ("mm/mprotect: allow unfaulted VMAs to
be unaccounted on mprotect()") (v6.7) an anonymous VMA without anon_vma loses VM_ACCOUNT (``ac``
in /proc/PID/smaps VmFlags) when made non-writable.  So after the layout and after every step,
and for every adjacent pair and every writable VMA, a probe runs the scenario up to that point
in fresh processes, adds that one mprotect, and compares /proc/PID/maps and the ``ac`` flags
with the engine's replay of the same steps plus the same mprotect.  Probing changes the
topology (a merge hands an anon_vma to a VMA without one), hence fresh processes every time.
"""
from __future__ import annotations

from typing import NamedTuple

from ..engine import replay
from ..policies.base import Policy
from ..scenario import Mprotect, Scenario, Target
from ..topology import Topology, VmaView
from .procs import Processes
from .replay import (Unsupported, _Live, _maps, _perms, _range, file_size, predictions,
                     supported)

#: probe protections: never writable (turning writable changes VM_ACCOUNT by itself)
CANDIDATES: tuple[frozenset[str], ...] = (frozenset({"read"}), frozenset({"read", "exec"}), frozenset({"exec"}), frozenset())


class Probe(NamedTuple):
    step: int               # steps before the probe
    label: str              # the snapshot it probes ("layout", "line 19")
    what: str               # "P/SRC1+SRC2 to r-x"
    process: str
    start: int
    end: int
    prot: frozenset[str]


class ProbeResult(NamedTuple):
    probes: int
    differences: tuple[str, ...]


def _private_anon(v: VmaView) -> bool:
    return "shared" not in v.flags and "file" not in v.flags


def _text(prot: frozenset[str]) -> str:
    return _perms(tuple(prot), False)[:3]


def probes(sc: Scenario, preds: list[Topology]) -> list[Probe]:
    out = []
    for i, t in enumerate(preds):
        for p in t.processes:
            vmas = p.vmas
            for j, (a, b) in enumerate(zip(vmas, vmas[1:])):
                if a.end != b.start or not (_private_anon(a) and _private_anon(b)):
                    continue
                avoid = {frozenset(a.prot), frozenset(b.prot)}
                if j > 0 and vmas[j - 1].end == a.start:
                    avoid.add(frozenset(vmas[j - 1].prot))
                if j + 2 < len(vmas) and vmas[j + 2].start == b.end:
                    avoid.add(frozenset(vmas[j + 2].prot))
                prot = next((c for c in CANDIDATES if c not in avoid), None)
                if prot is not None:
                    out.append(Probe(i, t.label, f"{p.name}/{a.name}+{b.name} to {_text(prot)}",
                                     p.name, a.start, b.end, prot))
            for v in vmas:
                if _private_anon(v) and "write" in v.prot:
                    prot = frozenset({"read"})
                    out.append(Probe(i, t.label, f"{p.name}/{v.name} to {_text(prot)}",
                                     p.name, v.start, v.end, prot))
    return out


def _expected(t: Topology, process: str, lo: int, hi: int) -> list[tuple[int, int, str, bool]]:
    return [(v.start, v.end, _perms(v.prot, "shared" in v.flags), "account" in v.flags)
            for v in t.process(process).vmas if v.start < hi and lo < v.end]


def _smaps_account(pid: int, lo: int, hi: int) -> dict[int, bool]:
    out: dict[int, bool] = {}
    start = None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split()[0]
            if "-" in head and not head.endswith(":"):
                a, b = (int(x, 16) for x in head.split("-"))
                start = a if a < hi and lo < b else None
            elif head == "VmFlags:" and start is not None:
                out[start] = "ac" in line.split()[1:]
    return out


def _observe(sc: Scenario, policy: Policy, preds: list[Topology], n: int,
             extra: Probe | None, lo: int, hi: int) -> dict[str, list[tuple[int, int, str, bool]]]:
    """Run the layout and the first ``n`` steps (then ``extra``) in fresh processes: each
    process's VMAs in the range, with VM_ACCOUNT."""
    import os
    files: dict[str, int] = {}
    try:
        for f in sorted({v.file for p in sc.processes for v in p.vmas if v.file}):
            files[f] = os.memfd_create(f"anondiff-{f}")
            os.ftruncate(files[f], file_size(sc))
        with Processes(files) as procs:
            lv = _Live(sc, policy, None, procs)
            lv.layout()
            for i in range(n):
                lv.step(preds[i], sc.steps[i])
            if extra is not None:
                procs.request(extra.process, "mprotect", start=extra.start,
                              length=extra.end - extra.start,
                              prot=sum({"read": 1, "write": 2, "exec": 4}[b] for b in extra.prot))
            out = {}
            for name, pid in procs.pids.items():
                acc = _smaps_account(pid, lo, hi)
                out[name] = [(a, b, perms, acc.get(a, False)) for a, b, perms in _maps(pid, lo, hi)]
            return out
    finally:
        for fd in files.values():
            os.close(fd)


def _show(vs: list[tuple[int, int, str, bool]]) -> str:
    return ", ".join(f"{a:#x}-{b:#x} {p}{' ac' if ac else ''}" for a, b, p, ac in vs) or "nothing"


def run(sc: Scenario, policy: Policy) -> ProbeResult:
    why = supported(sc)
    if why:
        raise Unsupported(why)
    preds = predictions(sc, policy)
    lo, hi = _range(sc, preds[0])
    diffs: list[str] = []
    count = 0
    # the plain layout after every step first (maps and VM_ACCOUNT), then the probes
    for i, t in enumerate(preds):
        seen = _observe(sc, policy, preds, i, None, lo, hi)
        for p in t.processes:
            want = _expected(t, p.name, lo, hi)
            if seen.get(p.name) != want:
                diffs.append(f"{sc.path}: {t.label}: process {p.name}: the kernel shows "
                             f"{_show(seen.get(p.name, []))}; {policy.name} predicts {_show(want)}")
        if i == 0 and diffs:
            raise Unsupported(f"the starting layout cannot be built on this kernel: {diffs[0]}")
    for pr in probes(sc, preds):
        count += 1
        step = Mprotect(Target(pr.process, None, pr.start, pr.end), pr.prot)
        t = replay(sc._replace(steps=sc.steps[:pr.step] + (step,)), policy).final
        want = _expected(t, pr.process, lo, hi)
        got = _observe(sc, policy, preds, pr.step, pr, lo, hi).get(pr.process, [])
        if got != want:
            diffs.append(f"{sc.path}: {pr.label}: probe mprotect {pr.what}: the kernel shows "
                         f"{_show(got)}; {policy.name} predicts {_show(want)}")
    return ProbeResult(count, tuple(diffs))
