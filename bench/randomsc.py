"""Random small scenarios for the throughput benchmark: a few processes in a 32-page window,
20-60 steps of every kind the syscalls have (fork, exit, write faults, mprotect, munmap, mmap,
madvise, snapshot).

Each step is chosen from the state of a replay under split-counters, and given by address
ranges, never by VMA names (merges, and so the pieces' names, differ between policies), so that
the scenario is valid under every policy.  Deterministic for a given seed.
"""
from __future__ import annotations

import random

from anondiff.engine import _Replayer
from anondiff.kernel.objects import VM_SHARED
from anondiff.policies import get
from anondiff.scenario import (PAGE_SHIFT, PAGE_SIZE, Exit, Fault, Fork, Madvise, Mmap,
                               Mprotect, Munmap, ProcessSpec, Scenario, Snapshot, Target, VmaSpec)

BASE = 0x100000 >> PAGE_SHIFT
WINDOW = 32
PROTS = (frozenset({"read", "write"}), frozenset({"read"}), frozenset({"read", "exec"}))


def _spec(rnd: random.Random, name: str, start: int, pages: int, layout: bool) -> VmaSpec:
    kind = rnd.choice(("anon", "anon", "anon", "file", "shared"))
    faulted = layout and kind != "shared" and rnd.random() < 0.7
    return VmaSpec(name, start << PAGE_SHIFT, (start + pages) << PAGE_SHIFT, rnd.choice(PROTS),
                   frozenset(), shared=kind == "shared", file="lib" if kind == "file" else None,
                   faulted=faulted,
                   anon_vma=("AV0" if faulted and kind == "anon" and rnd.random() < 0.5 else None))


def scenario(seed: int, steps: int | None = None) -> Scenario:
    rnd = random.Random(seed)
    n_steps = steps if steps is not None else rnd.randint(20, 60)
    serial = 0

    def fresh(prefix: str) -> str:
        nonlocal serial
        serial += 1
        return f"{prefix}{serial}"

    processes = []
    for p in ("P", "Q")[:rnd.randint(1, 2)]:
        vmas = []
        at = BASE
        while at < BASE + WINDOW - 1 and len(vmas) < 5:
            at += rnd.randint(0, 2)
            pages = rnd.randint(1, 6)
            if at + pages > BASE + WINDOW:
                break
            vmas.append(_spec(rnd, fresh("v"), at, pages, layout=True))
            at += pages
        processes.append(ProcessSpec(p, tuple(vmas)))
    sc = Scenario(path="<random>", name=f"random-{seed}", description="", processes=tuple(processes))
    r = _Replayer(sc, get("split-counters"), "full")
    r.layout()
    made: list = []
    alive = [p.name for p in processes]
    while len(made) < n_steps:
        k = r.k
        proc = rnd.choice(alive)
        mm = k.mms[proc]
        kind = rnd.choice(("fork", "exit", "fault", "fault", "fault", "mprotect", "mprotect",
                           "munmap", "mmap", "mmap", "madvise", "snapshot"))
        step = None
        vma = rnd.choice(mm.vmas) if mm.vmas else None
        if kind == "fork" and len(alive) < 4:
            step = Fork(proc, fresh("C"))
        elif kind == "exit" and len(alive) > 1:
            step = Exit(proc)
        elif kind == "snapshot":
            step = Snapshot(fresh("s"))
        elif kind == "mmap":
            free = [p for p in range(BASE, BASE + WINDOW) if mm.find(p) is None]
            if free:
                start = rnd.choice(free)
                pages = 1
                while pages < 4 and start + pages < BASE + WINDOW and mm.find(start + pages) is None:
                    pages += 1
                step = Mmap(proc, _spec(rnd, fresh("m"), start, rnd.randint(1, pages), layout=False))
        elif vma is not None:
            first = rnd.randrange(vma.start, vma.end)
            end = rnd.randint(first + 1, vma.end)
            target = Target(proc, None, first << PAGE_SHIFT, end << PAGE_SHIFT)
            if kind == "fault":
                step = Fault(proc, None, "all", first << PAGE_SHIFT)
            elif kind == "mprotect":
                step = Mprotect(target, rnd.choice(PROTS))
            elif kind == "munmap":
                step = Munmap(target)
            elif kind == "madvise":
                advice = rnd.choice(("dontfork", "dofork", "wipeonfork", "keeponfork"))
                if advice == "wipeonfork" and (vma.file is not None or VM_SHARED in vma.flags):
                    advice = "keeponfork"
                step = Madvise(target, advice)
        if step is None:
            continue
        r.step_no += 1
        r.do(step)
        r.record()
        if isinstance(step, Fork):
            alive.append(step.child)
        elif isinstance(step, Exit):
            alive.remove(proc)
        made.append(step)
    return sc._replace(steps=tuple(made))
