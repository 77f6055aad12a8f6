"""``make bench``: the figures the speed issue names, measured side by side in one run (ratios
against a baseline taken in the same run, never asserted).

1. fork of a process with N faulted one-page VMAs split from one mapping (N = 1,000, 10,000 and
   65,024, under vm.max_map_count): the engine's fork against the live kernel's fork() of the
   same layout (bench/forkbench.c, built with gcc when there is one), in CPU time of the forking
   thread (robust to other load) and wall clock; the cost per VMA at each N;
2. the invariant checks: after that fork (the whole child is new) and after a one-VMA step on
   the 65,024-VMA pair, incremental against the full recount;
3. random small scenarios (20-60 steps, bench/randomsc.py) replayed through
   ``engine.replay_many``, per second of CPU, checks on (incremental and full)
   (``python -m bench random`` runs only these; ``python -m bench search`` the rate of
   ``anondiff search`` for two policies with checks, alone);
4. a 10,000-generation fork-then-exit chain under degree and split-counters (linear?);
5. ``anondiff run`` of a 65,000-VMA scenario file (generated) in every format but dot: wall
   clock, CPU, peak RSS; and 16,000 VMAs for linearity;
6. ``anondiff run scenarios/seed-thread.yaml`` (9 policies) in every format against the time
   Python takes to import click, yaml and tabulate (the import floor).

7. a Debian kernel tree as a policy: first run (extract, cut, compile; aim under 10 s), cached
   run against its Python policy (aim: under 0.1 s more), the 65,000-VMA fork through the
   compiled code against the Python policy, in alternated rounds (``python -m bench trees``
   runs only these; ``python -m bench tree-fork 6.1 [ROUNDS]`` only the fork of one tree).

0. the mypyc-compiled model against the pure-Python one (ANONDIFF_PURE=1), side by side: the
   65,024-VMA fork (and each one's ratio to the live kernel), random scenarios per CPU second,
   ``anondiff run`` of a 65,000-VMA file (``python -m bench compiled`` runs only these).

``python -m bench big N [N...] [--format F ...]`` runs item 5 for those sizes alone (e.g.
``python -m bench big 65000 768000 --format list``: linear?).
"""
from __future__ import annotations

import gc
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from anondiff.engine import _Replayer, findings_many, replay_many
from anondiff.kernel import checks
from anondiff.policies import get
from anondiff.scenario import (PAGE_SIZE, Exit, Fork, Mprotect, ProcessSpec, Scenario, Target,
                               VmaSpec)

ROOT = Path(__file__).resolve().parent.parent
BASE = 0x7F0000000000
RW, R = frozenset({"read", "write"}), frozenset({"read"})
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "anondiff" / "bench"
SIZES = (1_000, 10_000, 65_024)


def split_mapping(n: int) -> Scenario:
    """n one-page VMAs sharing AV0, alternating protections: one faulted mapping split by
    mprotect (a starting layout, so that only the fork is timed)."""
    vmas = tuple(VmaSpec(f"v{i}", BASE + i * PAGE_SIZE, BASE + (i + 1) * PAGE_SIZE,
                         RW if i % 2 == 0 else R, frozenset(), faulted=True, anon_vma="AV0")
                 for i in range(n))
    return Scenario(path="<bench>", name=f"fork-{n}", description="",
                    processes=(ProcessSpec("P", vmas),), steps=(Fork("P", "C"),))


def chain(generations: int) -> Scenario:
    steps: list = []
    for g in range(generations):
        steps += [Fork(f"G{g}", f"G{g + 1}"), Exit(f"G{g}")]
    heap = VmaSpec("heap", 0x555555554000, 0x555555554000 + 2 * PAGE_SIZE, RW, frozenset(), faulted=True)
    return Scenario(path="<bench>", name="chain", description="",
                    processes=(ProcessSpec("G0", (heap,)),), steps=tuple(steps))


def best(fn, repeat: int = 3) -> float:  # type: ignore[no-untyped-def]
    return min(fn() for _ in range(repeat))


def _env(pure: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "ANONDIFF_PURE"}
    return {**env, "ANONDIFF_PURE": "1"} if pure else env


# -- 1, 2: fork and checks ----------------------------------------------------------------------

def kernel_forkbench() -> Path | None:
    """bench/forkbench.c, built once into the cache (None without gcc)."""
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        return None
    src = ROOT / "bench" / "forkbench.c"
    exe = CACHE / "forkbench"
    if not exe.exists() or exe.stat().st_mtime < src.stat().st_mtime:
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run([gcc, "-O2", "-o", str(exe), str(src)], check=True)
    return exe


def kernel_fork(exe: Path, n: int) -> tuple[float, float] | None:
    """(CPU, wall) seconds of the live kernel's fork() of n VMAs, best of 5."""
    done = subprocess.run([str(exe), str(n), "5"], capture_output=True, text=True)
    if done.returncode:
        return None
    cpu, wall = done.stdout.split()
    return int(cpu) / 1e9, int(wall) / 1e9


def engine_fork(policy: str, n: int, pure: bool = False) -> dict[str, float]:
    """In a fresh interpreter, so that its peak RSS is this benchmark's alone (``pure``: the
    Python model, ANONDIFF_PURE=1)."""
    out = subprocess.run([sys.executable, "-m", "bench", "fork", policy, str(n)], cwd=ROOT,
                         check=True, capture_output=True, text=True, env=_env(pure)).stdout
    return {k: float(v) for k, v in (item.split("=") for item in out.split())}


def _engine_fork(policy: str, n: int) -> None:
    """The fork of ``split_mapping(n)``, best of 3 in this process (each figure its own best),
    with the first run's CPU time beside (``first``).  ``faults``: the fork's minor page
    faults, the memory its new objects take that the process never had (about 2 us each on
    this VM).  pymalloc gives an emptied 1 MiB arena back to the kernel but keeps one, so a fork
    of up to about 1,000 VMAs reuses what the previous run freed and does not fault, and a
    larger one faults in every run: the best of 3 compares a warm small fork with a cold large
    one.  The first run faults at every size."""
    import resource
    sc = split_mapping(n)
    step = Mprotect(Target("P", None, BASE + PAGE_SIZE, BASE + 2 * PAGE_SIZE), RW)

    def once() -> dict[str, float]:
        r = _Replayer(sc, get(policy), "incremental")
        r.layout()
        r.record()
        r.step_no = 1
        gc.collect()
        with r.no_gc():
            f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            c0, w0 = time.thread_time(), time.perf_counter()
            r.do(sc.steps[0])
            c1, w1 = time.thread_time(), time.perf_counter()
            f1 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            r.record()
            c2 = time.thread_time()
            checks.check(r.k)
            c3 = time.thread_time()
            r.step_no = 2
            r.do(step)             # one VMA of the parent: merges with both neighbours
            c4 = time.thread_time()
            r.record()
            c5 = time.thread_time()
            checks.check(r.k)
            c6 = time.thread_time()
            r.teardown()
        return {"cpu": c1 - c0, "wall": w1 - w0, "inc": c2 - c1, "full": c3 - c2,
                "step": c4 - c3, "inc1": c5 - c4, "full1": c6 - c5, "faults": f1 - f0}

    runs = [once() for _ in range(3)]
    got = {k: min(r[k] for r in runs) for k in runs[0]}
    got["first"] = runs[0]["cpu"]
    got["rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(" ".join(f"{k}={v}" for k, v in got.items()))


def bench_fork(policies: tuple[str, ...] = ("split-counters", "degree", "clone-rework-2026"),
               sizes: tuple[int, ...] = SIZES) -> None:
    exe = kernel_forkbench()
    kernel = {n: kernel_fork(exe, n) if exe else None for n in sizes}
    if exe is None:
        print("fork: no gcc, no live-kernel baseline")
    for policy in policies:
        for n in sizes:
            e = engine_fork(policy, n)
            k = kernel[n]
            vs = (f"kernel {k[0] * 1e3:6.1f} ms CPU {k[1] * 1e3:6.1f} ms wall; engine/kernel "
                  f"x{e['cpu'] / k[0]:4.1f} CPU x{e['wall'] / k[1]:4.1f} wall" if k else "no kernel")
            # page faults: the fork's new objects on memory the process never touched before
            # (about 2 us each on this VM); a fork of up to about 1,000 VMAs reuses memory the
            # previous run freed, a larger one faults in every run (see _engine_fork): the
            # first run is on new memory at every size
            print(f"fork {n:>6} VMAs {policy:17} engine {e['cpu'] * 1e3:6.1f} ms CPU "
                  f"({e['cpu'] / n * 1e6:4.2f} us/VMA; kernel {k[0] / n * 1e6 if k else 0:4.2f}), "
                  f"{e['wall'] * 1e3:6.1f} ms wall, {e['faults'] / n:4.2f} page faults/VMA, "
                  f"first run {e['first'] / n * 1e6:4.2f} us/VMA; {vs}")
            if n == SIZES[-1]:
                print(f"  checks after that fork: incremental {e['inc'] * 1e3:6.1f} ms, full "
                      f"{e['full'] * 1e3:6.1f} ms (x{e['full'] / e['inc']:.1f}); after a one-VMA "
                      f"mprotect: incremental {e['inc1'] * 1e3:7.3f} ms, full "
                      f"{e['full1'] * 1e3:6.1f} ms (x{e['full1'] / max(e['inc1'], 1e-9):.0f}); "
                      f"peak RSS {e['rss']:.0f} MiB")


# -- 3, 4: many small scenarios; the chain -------------------------------------------------------

def random_rate(count: int = 300) -> float:
    """Random scenarios per CPU second through findings_many (split-counters, checks on)."""
    from bench.randomsc import scenario
    scenarios = [scenario(seed) for seed in range(count)]
    policies = [get("split-counters")]

    def once() -> float:
        t0 = time.process_time()
        for _ in findings_many(scenarios, policies, checks="incremental"):
            pass
        return time.process_time() - t0
    return count / best(once, 3)


def bench_compiled() -> None:
    """The mypyc-compiled model (anondiff/_compiled.py) against the pure-Python one
    (ANONDIFF_PURE=1), each in fresh interpreters, side by side: the 65,024-VMA fork (and its
    ratio to the live kernel's fork()), random small scenarios, and `anondiff run` of a
    65,000-VMA file."""
    from anondiff import _compiled
    if _compiled.active is None:
        print("compiled model: not built for these sources (make compiled); nothing to compare")
        return
    exe = kernel_forkbench()
    n = SIZES[-1]
    k = kernel_fork(exe, n) if exe else None
    for policy in ("split-counters", "degree"):
        c, p = engine_fork(policy, n), engine_fork(policy, n, pure=True)
        vs = (f"; live kernel {k[0] * 1e3:.1f} ms: compiled x{c['cpu'] / k[0]:.1f}, pure "
              f"x{p['cpu'] / k[0]:.1f} the kernel (aim x2)" if k else "")
        print(f"fork {n:,} VMAs, {policy:14}: compiled {c['cpu'] * 1e3:6.1f} ms CPU, pure "
              f"{p['cpu'] * 1e3:6.1f} ms: x{p['cpu'] / c['cpu']:.2f} faster compiled{vs}; "
              f"checks after it x{p['inc'] / c['inc']:.2f}", flush=True)
    rates = {}
    for pure in (False, True):
        rates[pure] = float(subprocess.run(
            [sys.executable, "-m", "bench", "random-rate"], cwd=ROOT, env=_env(pure), check=True,
            capture_output=True, text=True).stdout)
    print(f"random scenarios per CPU second (findings_many, split-counters, checks on): "
          f"compiled {rates[False]:5.0f}, pure {rates[True]:5.0f}: x{rates[False] / rates[True]:.2f} "
          f"(aim 5,000)", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.yaml"
        write_big(65_000, path)
        for fmt in ("list", "table"):
            args = [sys.executable, "-m", "anondiff", "run", str(path), "-p", "split-counters",
                    "--format", fmt]
            c = run_child(args, env=_env(False))
            p = run_child(args, env=_env(True))
            print(f"anondiff run, 65,000 VMAs + fork, {fmt:5}: compiled {c[1]:5.2f} s CPU "
                  f"({c[0]:5.2f} s wall), pure {p[1]:5.2f} s CPU ({p[0]:5.2f} s wall): "
                  f"x{p[1] / c[1]:.2f} (aim 2 s)", flush=True)
    print(f"load average {os.getloadavg()[0]:.1f}")


def bench_random(count: int = 300) -> None:
    from bench.randomsc import scenario
    scenarios = [scenario(seed) for seed in range(count)]
    steps = sum(len(s.steps) for s in scenarios) / count
    policies = [get("split-counters")]
    rates = {}
    for name, fn, mode in (("replay_many", replay_many, "incremental"),
                           ("findings_many", findings_many, "incremental"),
                           ("full", findings_many, "full")):
        def once() -> float:
            t0 = time.process_time()
            if fn is replay_many:
                for _ in replay_many(scenarios, policies, checks=mode, snapshots=False):
                    pass
            else:
                for _ in findings_many(scenarios, policies, checks=mode):
                    pass
            return time.process_time() - t0
        rates[name] = count / best(once, 3)
    print(f"random scenarios ({count}, {steps:.0f} steps on average), split-counters, checks on, "
          f"per CPU second: findings_many {rates['findings_many']:5.0f}, "
          f"replay_many(snapshots=False) {rates['replay_many']:5.0f}; with the full recount "
          f"{rates['full']:5.0f} (aim: 5,000); load average {os.getloadavg()[0]:.1f}")


def bench_chain(policy: str, generations: int) -> float:
    sc = chain(generations)

    def once() -> float:
        r = _Replayer(sc, get(policy))
        t0 = time.process_time()
        r.run()
        return time.process_time() - t0

    return best(once, 2)


# -- 5: a large scenario file --------------------------------------------------------------------

def write_big(n: int, path: Path) -> None:
    with open(path, "w") as f:
        f.write(f"description: {n} one-page VMAs sharing AV0, alternating rw and r; P forks C.\n"
                "processes:\n  - name: P\n    vmas:\n")
        for i in range(n):
            f.write(f"      - {{name: v{i}, start: {BASE + i * PAGE_SIZE:#x}, pages: 1, "
                    f"prot: {'rw' if i % 2 == 0 else 'r'}, faulted: true, anon_vma: AV0}}\n")
        f.write("steps:\n  - {fork: P, child: C}\n")


def run_child(args: list[str], env: dict[str, str] | None = None) -> tuple[float, float, float]:
    """(wall s, CPU s, peak RSS MiB) of one command, output to /dev/null; bytecode cached as on
    an installed system (this workplace sets PYTHONDONTWRITEBYTECODE, which would compile
    every module of the package again in each run: see bench_cli)."""
    env = {k: v for k, v in (os.environ if env is None else env).items()
           if k != "PYTHONDONTWRITEBYTECODE"}
    t0 = time.perf_counter()
    with open(os.devnull, "w") as null:
        p = subprocess.Popen(args, cwd=ROOT, stdout=null, env=env)
        _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    if status:
        raise SystemExit(f"{' '.join(args)}: exit status {status}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def bench_big(sizes: tuple[int, ...] = (16_000, 65_000),
              formats: tuple[str, ...] = ("list", "table", "json", "ascii")) -> None:
    """Each size in each format; from the second size on, the CPU time and the peak per VMA
    against the first size's (1.0: linear)."""
    first: dict[str, tuple[float, float]] = {}
    for fmt in formats:         # the bytecode written, the caches warm
        run_child([sys.executable, "-m", "anondiff", "run", "scenarios/seed-thread.yaml",
                   "--format", fmt])
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            path = Path(tmp) / f"big-{n}.yaml"
            write_big(n, path)
            for fmt in formats:
                wall, cpu, rss = run_child([sys.executable, "-m", "anondiff", "run", str(path),
                                            "-p", "split-counters", "--format", fmt])
                linear = ""
                if fmt in first:
                    cpu0, rss0 = first[fmt]
                    linear = (f"; per VMA x{cpu / n / cpu0:.2f} CPU, x{rss / n / rss0:.2f} "
                              f"memory of {sizes[0]:,}")
                else:
                    first[fmt] = cpu / n, rss / n
                print(f"anondiff run, {n:>6} VMAs + fork, {fmt:5}: {wall:6.2f} s wall, "
                      f"{cpu:6.2f} s CPU ({cpu / n * 1e6:5.1f} us/VMA), peak RSS {rss:5.0f} MiB"
                      f"{linear}; load average {os.getloadavg()[0]:.1f}", flush=True)
            path.unlink()


# -- 6: start-up --------------------------------------------------------------------------------

def bench_cli(rounds: int = 11) -> None:
    """Each format and the import floor in turn, in fresh interpreters, bytecode cached as on an
    installed system (this workplace sets PYTHONDONTWRITEBYTECODE, which would recompile every
    module each run)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

    def timed(args: list[str]) -> float:
        t0 = time.perf_counter()
        subprocess.run(args, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - t0

    py = sys.executable
    base = [py, "-c", "import click, yaml, tabulate"]
    formats = ("table", "list", "ascii", "json", "dot")
    runs = {f: [py, "-m", "anondiff", "run", "scenarios/seed-thread.yaml", "--format", f]
            for f in formats}
    timed(base)
    for args in runs.values():
        timed(args)                           # warm the caches, write the bytecode
    samples: dict[str, list[float]] = {f: [] for f in ("floor",) + formats}
    for _ in range(rounds):
        samples["floor"].append(timed(base))
        for f, args in runs.items():
            samples[f].append(timed(args))
    floor = statistics.median(samples["floor"])
    print(f"python -c 'import click, yaml, tabulate': {floor * 1000:6.1f} ms (median of {rounds})")
    for f in formats:
        t = statistics.median(samples[f])
        print(f"anondiff run seed-thread.yaml (9 policies), {f:5}: {t * 1000:6.1f} ms "
              f"(x{t / floor:.2f} the import floor; aim x1.25)")


def bench_explain() -> None:
    """What ``anondiff explain`` and ``--metrics`` cost over a plain replay (the hooks report
    to a tracer, every call is recorded; metrics freeze after each fork)."""
    from anondiff.engine import replay
    from anondiff.explain.core import explain
    from anondiff.metrics import replay_measured

    for what, sc in (("fork of 20000 VMAs", split_mapping(20_000)),
                     ("2,000-generation chain", chain(2_000))):
        def timed(fn) -> float:  # type: ignore[no-untyped-def]
            def once() -> float:
                t0 = time.perf_counter()
                fn(sc, "split-counters")
                return time.perf_counter() - t0
            return best(once, 2)
        plain, explained, measured = timed(replay), timed(explain), timed(replay_measured)
        print(f"{what}, split-counters: replay {plain:5.2f} s, explain x{explained / plain:.1f}, "
              f"--metrics x{measured / plain:.1f}")

def _search_copies(goal, budget, count: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Two independent copies of the single-core search, side by side: two processes forked
    from this one, each running every other chunk of the first ``count`` scenarios in
    itself, as ``--jobs 1`` does (the scenarios ``--jobs 2`` tries, split evenly).  Their
    rate (wall clock from the first fork to the last exit) and their CPU per scenario."""
    import os
    from anondiff.search.runner import Plan, _chunks, run_chunk

    chunks = list(_chunks(Plan(goal, budget, 0, count, False)))
    before = os.times()
    t0 = time.perf_counter()
    pids = []
    for k in range(2):
        pid = os.fork()
        if pid == 0:                        # pragma: no cover - the child
            code = 0
            try:
                gc.freeze()                 # as a --jobs worker does
                for chunk in chunks[k::2]:
                    run_chunk(chunk)
            except BaseException:
                code = 1
            os._exit(code)
        pids.append(pid)
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        assert status == 0, status
    wall = time.perf_counter() - t0
    after = os.times()
    cpu = after.children_user + after.children_system - before.children_user \
        - before.children_system
    return count / wall, cpu / count


def bench_search(count: int = 1_536, rounds: int = 7) -> None:
    """``anondiff search`` for two policies with invariant checks on (split-counters and
    clone-rework-2026 under --invariants: nothing to find, so every scenario is tried), in
    scenarios per second per core (aim: 5,000), against the engine replaying the same
    scenarios (the baseline: what generating and judging add) and the generator drawing them
    alone (per CPU second), and with two workers (aim: nearly twice one).

    What two workers can reach on this machine is what two independent copies of the
    single-core search reach at the same moment (two cores of a VM are not twice one: the
    copies too take more CPU per scenario than one alone), so each round runs --jobs 1, then
    the two copies and --jobs 2 (in turn first), each on 4 x ``count`` scenarios but the
    first; the medians of the rounds' ratios are printed (``python -m bench search ROUNDS``
    for more rounds)."""
    import os
    from anondiff.search.generate import Budget, generate
    from anondiff.search.runner import Goal, _pool, _sigint_blocked, search

    # without mremap, as when this figure was first taken (so that it compares across
    # sessions); the copy_vma() VM_BUG_ON that kept mremap out then is fixed
    budget = Budget(events=("fork", "exit", "write", "mprotect", "madvise", "munmap", "mmap"))
    goal = Goal(("split-counters", "clone-rework-2026"), difference=False)
    t0 = time.process_time()
    scenarios = [generate(0, i, budget) for i in range(count)]
    drawn = count / (time.process_time() - t0)
    policies = [get(p) for p in goal.policies]
    t0 = time.perf_counter()
    for _ in findings_many(scenarios, policies):      # what the search replays them with
        pass
    engine = count / (time.perf_counter() - t0)
    steps = sum(len(sc.steps) for sc in scenarios) / count
    del scenarios
    t0 = time.perf_counter()
    with _sigint_blocked():
        pool = _pool(2)
    start = time.perf_counter() - t0
    pool.shutdown()
    rows = []
    for r in range(rounds):
        cpu = time.process_time()
        one = search(goal, budget, seed=0, count=count, jobs=1)
        cpu = (time.process_time() - cpu) / count
        if r % 2 == 0:                  # in turn first and last: what the load does meanwhile
            copies, copies_cpu = _search_copies(goal, budget, 4 * count)
        # the workers' start is part of --jobs 2's figure; from its first result on, the
        # steady rate a long search runs at
        marks: list[tuple[float, int]] = []
        before = os.times()
        two = search(goal, budget, seed=0, count=4 * count, jobs=2,
                     progress=lambda p: marks.append((p.elapsed, p.tried)))
        after = os.times()
        if r % 2 == 1:
            copies, copies_cpu = _search_copies(goal, budget, 4 * count)
        assert not one.found and not two.found and two.tried == 4 * count
        (t_a, n_a), (t_b, n_b) = marks[0], marks[-1]
        # what the load moves little: the workers' CPU per scenario against one process's
        # (forked workers are this process's children, reaped by the end of the search; a
        # fork server's are not, and count 0) and this process's own CPU meanwhile
        workers = (after.children_user + after.children_system
                   - before.children_user - before.children_system) / (4 * count)
        parent = after.user + after.system - before.user - before.system
        rows.append((one.rate, copies / one.rate, two.rate / one.rate,
                     (n_b - n_a) / (t_b - t_a) / one.rate, two.rate / copies, marks[0][0],
                     copies_cpu / cpu, workers / cpu, parent / two.elapsed,
                     os.getloadavg()[0]))
    med = [statistics.median(r[i] for r in rows) for i in range(len(rows[0]))]
    rate, copies_x, two_x, steady_x, against, first, copies_cpu, workers, parent, _ = med
    print(f"search, 2 policies with checks ({steps:.1f} steps on average): {rate:6,.0f} "
          f"scenarios/s on one core (the engine alone: {engine:,.0f}/s, search "
          f"{rate / engine:.2f}x of it; the generator alone: {drawn:,.0f} per CPU second); "
          f"the medians of {rounds} rounds: two independent "
          f"copies x{copies_x:.2f} of it, --jobs 2 x{two_x:.2f} (x{steady_x:.2f} once the "
          f"workers run), {against:.2f} of the copies' rate; first result after {first:.3f} s "
          f"(pool started in {start * 1000:.0f} ms), CPU per scenario against one process's: "
          f"the copies x{copies_cpu:.2f}, --jobs 2's workers x{workers:.2f}; the search "
          f"process {parent:.1%} of a core; load average {os.getloadavg()[0]:.1f}")
    for r in rows:
        print(f"  round: one core {r[0]:6,.0f}/s, copies x{r[1]:.2f}, --jobs 2 x{r[2]:.2f} "
              f"({r[4]:.2f} of the copies), CPU/scenario copies x{r[6]:.2f} workers "
              f"x{r[7]:.2f}, load {r[9]:.1f}")


#: the Debian trees the benchmark runs, each with the Python policy of its version
TREE_POLICIES: dict[str, str] = {"5.10": "v5.10-stable", "6.1": "v6.1", "7.2": "clone-rework-2026"}


def debian_tree(version: str) -> str | None:
    """A Debian linux-source tarball fetched by anondiff.ktree.debian, if it is there."""
    path = Path.home() / ".cache" / "anondiff" / "debian" / f"linux-source-{version}.tar.xz"
    return str(path) if path.is_file() else None


def _bench_tree_first(tarball: str) -> None:
    """In a fresh interpreter with an empty XDG_CACHE_HOME: extract, then cut and compile. The
    CPU seconds (this process's threads and its children: xz, gcc) say what the wall clock
    means on a shared machine."""
    import os
    from anondiff.ktree import build
    from anondiff.ktree.source import open_tree, parse_spec

    def cpu() -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    spec = parse_spec(tarball)
    assert spec is not None
    t0, c0 = time.perf_counter(), cpu()
    tree = open_tree(spec)
    t1, c1 = time.perf_counter(), cpu()
    build.build(tree)
    t2, c2 = time.perf_counter(), cpu()
    print(f"first run of tree {tree.name}: extract {t1 - t0:5.2f} s (CPU {c1 - c0:5.2f} s), "
          f"cut and compile {t2 - t1:5.2f} s (CPU {c2 - c1:5.2f} s), total {t2 - t0:5.2f} s; "
          f"load average {os.getloadavg()[0]:.1f}")


def bench_trees(rounds: int = 11) -> None:
    """A kernel tree as a policy (issue 6): first run, cached run, and the 65,000-VMA fork."""
    import os
    import tempfile
    for version, python in TREE_POLICIES.items():
        tarball = debian_tree(version)
        if tarball is None:
            print(f"tree {version}: no linux-source-{version}.tar.xz in ~/.cache/anondiff/debian/")
            continue
        with tempfile.TemporaryDirectory() as cache:
            env = {**os.environ, "XDG_CACHE_HOME": cache}
            print(subprocess.run([sys.executable, "-m", "bench", "tree-first", tarball], cwd=ROOT,
                                 env=env, check=True, capture_output=True, text=True).stdout,
                  end="")
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

        def timed(policy: str) -> float:
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "anondiff", "run", "scenarios/seed-thread.yaml",
                            "-p", policy], cwd=ROOT, env=env, check=True,
                           stdout=subprocess.DEVNULL)
            return time.perf_counter() - t0

        timed(tarball), timed(python)
        pairs = [(timed(tarball), timed(python)) for _ in range(rounds)]
        tree_t = statistics.median(p[0] for p in pairs)
        py_t = statistics.median(p[1] for p in pairs)
        print(f"anondiff run seed-thread.yaml, tree {version} (cached) {tree_t * 1000:6.1f} ms, "
              f"{python} {py_t * 1000:6.1f} ms: {(tree_t - py_t) * 1000:+.1f} ms")
        bench_fork((python, tarball), SIZES[-1:])
        bench_tree_fork(version, tarball, python)
    print(f"load average {os.getloadavg()[0]:.1f}")


def bench_tree_fork(version: str, tarball: str, python: str, rounds: int = 11) -> None:
    """The 65,024-VMA fork through the tree against its Python policy, compiled (the default)
    and pure (ANONDIFF_PURE=1, which also runs the tree's readback as Python): ``rounds``
    rounds of one fresh process each, the two in turn first, so that both see the same load.
    Each round gives two ratios of the tree's CPU to the Python policy's: of the best of the
    process's three forks (memory the process freed after its first fork taken again), and of
    its first fork (every object on memory the process never had, as in one ``anondiff run``).
    Single runs move by 30% on a VM: the medians of the rounds, and their quartiles."""
    from anondiff import _compiled
    n = SIZES[-1]
    modes = (False, True) if _compiled.active is not None else (True,)
    for pure in modes:
        rows: list[tuple[dict[str, float], dict[str, float]]] = []
        for r in range(rounds):
            order = (tarball, python) if r % 2 == 0 else (python, tarball)
            got = {policy: engine_fork(policy, n, pure) for policy in order}
            rows.append((got[tarball], got[python]))
        what = "pure" if pure else "compiled"
        for key, name in (("cpu", "best of 3"), ("first", "first fork")):
            ratios = [tree[key] / py[key] for tree, py in rows]
            q1, med, q3 = statistics.quantiles(ratios, n=4, method="inclusive")
            tree_us = statistics.median(tree[key] for tree, _ in rows) / n * 1e6
            py_us = statistics.median(py[key] for _, py in rows) / n * 1e6
            faults = (statistics.median(tree["faults"] for tree, _ in rows) / n,
                      statistics.median(py["faults"] for _, py in rows) / n)
            extra = (f"; page faults/VMA tree {faults[0]:.2f}, {python} {faults[1]:.2f}"
                     if key == "cpu" else "")
            print(f"fork {n:,} VMAs, {what}, {name}: tree {version} {tree_us:5.2f} us/VMA, "
                  f"{python} {py_us:5.2f} us/VMA (medians); tree x{med:.2f} (quartiles "
                  f"x{q1:.2f}-x{q3:.2f}, {rounds} rounds alternated; aim: x1.00 or less)"
                  f"{extra}", flush=True)
    if _compiled.active is None:
        print("(the compiled model is not built for these sources: make compiled)")


def tree_fork_main(args: list[str]) -> None:
    """``python -m bench tree-fork VERSION [ROUNDS]``: the tree fork's rounds alone."""
    version = args[0] if args else "6.1"
    tarball = debian_tree(version)
    if version not in TREE_POLICIES or tarball is None:
        print(f"python -m bench tree-fork: no tree {version!r} (5.10, 6.1 or 7.2, fetched by "
              "anondiff.ktree.debian)", file=sys.stderr)
        sys.exit(2)
    bench_tree_fork(version, tarball, TREE_POLICIES[version], int(args[1]) if args[1:] else 11)
    print(f"load average {os.getloadavg()[0]:.1f}")


def main() -> None:
    bench_compiled()
    bench_fork()
    bench_random()
    for policy in ("degree", "split-counters"):
        t1 = bench_chain(policy, 1_000)
        t10 = bench_chain(policy, 10_000)
        print(f"fork-then-exit chain, {policy:15} 1,000 generations {t1:6.2f} s   "
              f"10,000 generations {t10:6.2f} s   (x{t10 / t1:.1f} for x10)")
    bench_big()
    bench_explain()
    bench_cli()
    bench_search()
    bench_trees()


if __name__ == "__main__":
    if sys.argv[1:2] == ["fork"]:
        _engine_fork(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1:2] == ["big"]:
        args = sys.argv[2:]
        fmts = tuple(args[i + 1] for i, a in enumerate(args) if a == "--format")
        nums = tuple(int(a) for i, a in enumerate(args)
                     if a != "--format" and (i == 0 or args[i - 1] != "--format"))
        bench_big(nums or (16_000, 65_000), fmts or ("list", "table", "json", "ascii"))
    elif sys.argv[1:2] == ["search"]:
        bench_search(rounds=int(sys.argv[2]) if sys.argv[2:] else 7)
    elif sys.argv[1:2] == ["random"]:
        bench_random()
    elif sys.argv[1:2] == ["tree-first"]:
        _bench_tree_first(sys.argv[2])
    elif sys.argv[1:2] == ["trees"]:
        bench_trees()
    elif sys.argv[1:2] == ["tree-fork"]:
        tree_fork_main(sys.argv[2:])
    elif sys.argv[1:2] == ["compiled"]:
        bench_compiled()
    elif sys.argv[1:2] == ["random-rate"]:
        print(random_rate())
    elif sys.argv[1:2] == ["cli"]:
        bench_cli()
    elif sys.argv[1:]:
        print(f"python -m bench: unknown benchmark {sys.argv[1]!r} (fork POLICY N, big [N...] "
              "[--format F], search [ROUNDS], random, random-rate, cli, compiled, trees, "
              "tree-first TARBALL, tree-fork VERSION [ROUNDS]; none: all of them)",
              file=sys.stderr)
        sys.exit(2)
    else:
        main()
