"""``make bench``: the figures the core issue names, measured (not asserted).

1. one fork of a process with 65,000 faulted VMAs split from one mapping (the live kernel: about
   90 ms on these machines; aim: engine under 0.2 s, peak memory under 150 MB);
2. a 10,000-generation fork-then-exit chain under degree and split-counters (aim: under 5 s,
   growing linearly);
3. ``anondiff run`` on the seed-thread scenario with all policies, against the time Python takes
   to import click, yaml and tabulate (aim: within 25%);
4. a Debian kernel tree as a policy: first run (extract, cut, compile; aim under 10 s), cached
   run against its Python policy (aim: under 0.1 s more), the 65,000-VMA fork through the
   compiled code against the Python policy (``python -m bench trees`` runs only these).
"""
from __future__ import annotations

import gc
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

from anondiff.engine import _Replayer
from anondiff.policies import get
from anondiff.scenario import PAGE_SIZE, Exit, Fork, ProcessSpec, Scenario, VmaSpec

ROOT = Path(__file__).resolve().parent.parent
BASE = 0x7F0000000000
RW, R = frozenset({"read", "write"}), frozenset({"read"})


def split_mapping(n: int) -> Scenario:
    """n one-page VMAs sharing AV0, alternating protections: one faulted mapping split by
    mprotect (a starting layout, so that only the fork is timed)."""
    vmas = tuple(VmaSpec(f"v{i}", BASE + i * PAGE_SIZE, BASE + (i + 1) * PAGE_SIZE,
                         RW if i % 2 == 0 else R, frozenset(), faulted=True, anon_vma="AV0")
                 for i in range(n))
    return Scenario(path="<bench>", name="fork-65000", description="",
                    processes=(ProcessSpec("P", vmas),), steps=(Fork("P", "C"),))


def chain(generations: int) -> Scenario:
    steps: list = []
    for g in range(generations):
        steps += [Fork(f"G{g}", f"G{g + 1}"), Exit(f"G{g}")]
    heap = VmaSpec("heap", 0x555555554000, 0x555555554000 + 2 * PAGE_SIZE, RW, frozenset(), faulted=True)
    return Scenario(path="<bench>", name="chain", description="",
                    processes=(ProcessSpec("G0", (heap,)),), steps=tuple(steps))


def best(fn, repeat: int = 3) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        times.append(fn())
    return min(times)


def bench_fork(policy: str, n: int = 65_000) -> None:
    """In a fresh interpreter, so that its peak RSS is this benchmark's alone."""
    out = subprocess.run([sys.executable, "-m", "bench", "fork", policy, str(n)], cwd=ROOT,
                         check=True, capture_output=True, text=True).stdout
    print(out, end="")


def _bench_fork(policy: str, n: int) -> None:
    import resource
    sc = split_mapping(n)

    def once(trace: bool = False) -> tuple[float, float, float]:
        r = _Replayer(sc, get(policy))
        r.layout()
        r.step_no = 1
        gc.collect()
        if trace:
            tracemalloc.start()
        t0 = time.perf_counter()
        with r.no_gc():
            r.do(sc.steps[0])
        t1 = time.perf_counter()
        with r.no_gc():
            r.record()
        t2 = time.perf_counter()
        peak = tracemalloc.get_traced_memory()[1] if trace else 0
        if trace:
            tracemalloc.stop()
        return t1 - t0, t2 - t1, peak

    runs = [once() for _ in range(3)]
    fork = min(r[0] for r in runs)
    check = min(r[1] for r in runs)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024   # before tracemalloc's own
    peak = once(trace=True)[2]
    print(f"fork of {n} VMAs, {policy:17} engine fork {fork * 1000:6.1f} ms, then invariant "
          f"checks {check * 1000:6.1f} ms; allocated by the fork {peak / 2**20:5.1f} MiB, "
          f"process peak RSS (scenario, parent and child) {rss:5.1f} MiB")


def bench_chain(policy: str, generations: int) -> float:
    sc = chain(generations)

    def once() -> float:
        r = _Replayer(sc, get(policy))
        t0 = time.perf_counter()
        r.run()
        return time.perf_counter() - t0

    return best(once, 2)


def bench_cli(rounds: int = 21) -> None:
    """Both commands in turn, in fresh interpreters, bytecode cached as on an installed system
    (this workplace sets PYTHONDONTWRITEBYTECODE, which would recompile every module each run)."""
    import os
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

    def timed(args: list[str]) -> float:
        t0 = time.perf_counter()
        subprocess.run(args, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - t0

    py = sys.executable
    base = [py, "-c", "import click, yaml, tabulate"]
    run = [py, "-m", "anondiff", "run", "scenarios/seed-thread.yaml"]
    timed(base), timed(run)                     # warm the caches, write the bytecode
    pairs = [(timed(base), timed(run)) for _ in range(rounds)]
    imports = statistics.median(p[0] for p in pairs)
    runs = statistics.median(p[1] for p in pairs)
    print(f"python -c 'import click, yaml, tabulate': {imports * 1000:6.1f} ms (median of {rounds})")
    print(f"anondiff run seed-thread.yaml (9 policies, table): {runs * 1000:6.1f} ms "
          f"({(runs / imports - 1) * 100:+.0f}% over the imports)")


def bench_search(count: int = 1_536) -> None:
    """``anondiff search`` for two policies with invariant checks on (split-counters and
    clone-rework-2026 under --invariants: nothing to find, so every scenario is tried), in
    scenarios per second per core (aim: 5,000), against the engine replaying the same
    scenarios (the baseline: what generating and judging add), and with two workers (aim:
    nearly twice one)."""
    from anondiff.search.generate import Budget, generate
    from anondiff.search.runner import Goal, search

    budget = Budget()
    goal = Goal(("split-counters", "clone-rework-2026"), difference=False)
    scenarios = [generate(0, i, budget) for i in range(count)]
    policies = [get(p) for p in goal.policies]
    t0 = time.perf_counter()
    for sc in scenarios:
        for p in policies:
            _Replayer(sc, p).run()
    engine = count / (time.perf_counter() - t0)
    steps = sum(len(sc.steps) for sc in scenarios) / count
    cpu = time.process_time()
    one = search(goal, budget, seed=0, count=count, jobs=1)
    cpu = time.process_time() - cpu
    two = search(goal, budget, seed=0, count=2 * count, jobs=2)
    assert not one.found and not two.found
    # the machine is shared: the CPU-time rate and the load average say how far the wall
    # clock figures can be trusted
    import os
    print(f"search, 2 policies with checks ({steps:.1f} steps on average): {one.rate:6,.0f} "
          f"scenarios/s on one core ({count / cpu:,.0f} per CPU second; the engine alone: "
          f"{engine:,.0f}/s, search {one.rate / engine:.2f}x of it); --jobs 2: "
          f"{two.rate:,.0f}/s (x{two.rate / one.rate:.2f} of --jobs 1); load average "
          f"{os.getloadavg()[0]:.1f}")


def debian_tree(version: str) -> str | None:
    """A Debian linux-source tarball fetched by anondiff.ktree.debian, if it is there."""
    path = Path.home() / ".cache" / "anondiff" / "debian" / f"linux-source-{version}.tar.xz"
    return str(path) if path.is_file() else None


def _bench_tree_first(tarball: str) -> None:
    """In a fresh interpreter with an empty XDG_CACHE_HOME: extract, then cut and compile."""
    from anondiff.ktree import build
    from anondiff.ktree.source import open_tree, parse_spec
    spec = parse_spec(tarball)
    assert spec is not None
    t0 = time.perf_counter()
    tree = open_tree(spec)
    t1 = time.perf_counter()
    build.build(tree)
    t2 = time.perf_counter()
    print(f"first run of tree {tree.name}: extract {t1 - t0:5.2f} s, cut and compile "
          f"{t2 - t1:5.2f} s, total {t2 - t0:5.2f} s")


def bench_trees(rounds: int = 11) -> None:
    """A kernel tree as a policy (issue 6): first run, cached run, and the 65,000-VMA fork."""
    import os
    import tempfile
    for version, python in (("6.1", "v6.1"), ("7.2", "clone-rework-2026")):
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
        bench_fork(python)
        bench_fork(tarball)


def main() -> None:
    for policy in ("split-counters", "degree", "clone-rework-2026"):
        bench_fork(policy)
    for policy in ("degree", "split-counters"):
        t1 = bench_chain(policy, 1_000)
        t10 = bench_chain(policy, 10_000)
        print(f"fork-then-exit chain, {policy:15} 1,000 generations {t1:6.2f} s   "
              f"10,000 generations {t10:6.2f} s   (x{t10 / t1:.1f} for x10)")
    bench_cli()
    bench_search()
    bench_trees()


if __name__ == "__main__":
    if sys.argv[1:2] == ["fork"]:
        _bench_fork(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1:2] == ["search"]:
        bench_search()
    elif sys.argv[1:2] == ["tree-first"]:
        _bench_tree_first(sys.argv[2])
    elif sys.argv[1:2] == ["trees"]:
        bench_trees()
    else:
        main()
