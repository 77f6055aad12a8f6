"""A kernel tree's own C code against the Python policy of its era.

Every shipped scenario, then random step sequences (the state machine of test_stateful.py),
must give the same snapshots (VMAs, chains, anon_vmas with their counters, refcounts and
interval trees, findings, crashes) under the compiled tree as under the Python policy, the
policy name aside.  The trees are Debian's linux-source packages (``anondiff.ktree.debian``
caches them in ~/.cache/anondiff/debian/; ``ANONDIFF_TREE_<version>`` points elsewhere); a
test skips, saying why, when gcc or the tarball is missing.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis.stateful import invariant

from anondiff.engine import replay
from anondiff.policies import get
from anondiff.policies.base import Policy
from anondiff.scenario import load
from anondiff.topology import Topology

from .test_stateful import REFERENCE, Steps

ROOT = Path(__file__).parent.parent
#: Debian tree -> the Python policy it must equal.  6.12.117 is neither v6.1 nor
#: split-counters: it keeps the pre-2025 is_mergeable_anon_vma() (v6.1's rule) but has v6.7's
#: VM_ACCOUNT rule in mprotect_fixup(): the v6.12 era variant.  5.10.223 has the backport of
#: commit 2555283eb40d (num_children/num_active_vmas) in the 5.10 mm: v5.10-stable.
TREES = {"5.10": "v5.10-stable", "6.1": "v6.1", "6.12": "v6.12", "7.2": "clone-rework-2026"}
SCENARIOS = sorted(str(p.relative_to(ROOT)) for pattern in
                   ("scenarios/*.yaml", "scenarios/kernel-runs/*.yaml", "scenarios/found/*.yaml")
                   for p in ROOT.glob(pattern))


def tarball(version: str) -> Path | None:
    env = os.environ.get("ANONDIFF_TREE_" + version.replace(".", "_"))
    path = Path(env) if env else (Path.home() / ".cache" / "anondiff" / "debian" /
                                  f"linux-source-{version}.tar.xz")
    return path if path.is_file() else None


_POLICIES: dict[str, Policy] = {}


def tree_policy(version: str) -> Policy:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed (Debian package gcc)")
    path = tarball(version)
    if path is None:
        pytest.skip(f"no linux-source-{version}.tar.xz in ~/.cache/anondiff/debian/ "
                    f"(set ANONDIFF_TREE_{version.replace('.', '_')})")
    if version not in _POLICIES:
        _POLICIES[version] = get(str(path))
    return _POLICIES[version]


def differences(a: Topology, b: Topology) -> list[str]:
    a = a._replace(policy=b.policy)
    if a == b:
        return []
    out = [f"tree   {x}\npython {y}" for x, y in zip(a.processes, b.processes) if x != y]
    out += [f"tree   {x}\npython {y}" for x, y in zip(a.anon_vmas, b.anon_vmas) if x != y]
    if len(a.anon_vmas) != len(b.anon_vmas):
        out.append(f"{len(a.anon_vmas)} anon_vmas under the tree, {len(b.anon_vmas)} in Python")
    if a.findings != b.findings:
        out.append(f"findings: tree {a.findings}\n  python {b.findings}")
    if a.transient_anon_vmas != b.transient_anon_vmas:
        out.append(f"transient anon_vmas: tree {a.transient_anon_vmas}, python {b.transient_anon_vmas}")
    if a.crashed != b.crashed:
        out.append(f"crashed: tree {a.crashed}, python {b.crashed}")
    return out or [f"{a}\n  vs {b}"]


@pytest.mark.parametrize("version", sorted(TREES))
@pytest.mark.parametrize("path", SCENARIOS)
def test_scenario_same_as_get(path: str, version: str) -> None:
    tree = tree_policy(version)
    sc = load(str(ROOT / path))
    ours, theirs = replay(sc, tree), replay(sc, get(TREES[version]))
    assert [s.label for s in ours.snapshots] == [s.label for s in theirs.snapshots]
    for a, b in zip(ours.snapshots, theirs.snapshots):
        assert not differences(a, b), f"{path} @ {a.label}:\n" + "\n".join(differences(a, b))


@pytest.mark.parametrize("version", sorted(TREES))
def test_interval_trees_walked_in_c_match_the_readback(version: str) -> None:
    """The Python view of each interval tree (kept from the C code's insert/remove log) is the
    C tree walked in order."""
    tree = tree_policy(version)
    from anondiff.engine import _Replayer
    sc = load(str(ROOT / "scenarios/kernel-runs/check4_o1_five_generations.yaml"))
    r = _Replayer(sc, tree)
    r.run()
    b = tree._b   # type: ignore[attr-defined]
    checked = 0
    for av in r.k.live:
        python_order = sorted(av.tree, key=lambda avc: (avc.vma.pgoff, avc.seq))
        assert b.tree_order(av) == python_order, av.name
        checked += len(python_order)
    assert checked > 10


def test_6_1_differs_from_clone_rework_in_chain_order() -> None:
    """The comparison can fail: 6.1's anon_vma_clone() keeps the source's chain order, the
    2026 rework reverses it."""
    tree = tree_policy("6.1")
    sc = load(str(ROOT / "scenarios/kernel-runs/check4_o1_five_generations.yaml"))
    assert differences(replay(sc, tree).final, replay(sc, get("clone-rework-2026")).final)


def test_5_10_is_neither_degree_nor_v6_1() -> None:
    """The comparison can fail: the 5.10.223 tree has split counters (v5.10, 5.10.y before the
    backport, has degree); its mremap() refuses MREMAP_DONTUNMAP of a file mapping
    (vma_to_resize(), v5.7 .. v5.12) where v6.1 moves it, and checks a move's destination
    before it looks for the old VMA (-EINVAL, where v6.1 says -EFAULT)."""
    from anondiff.errors import ReplayError
    from anondiff.scenario import loads
    tree = tree_policy("5.10")
    sc = load(str(ROOT / "scenarios/kernel-runs/check4_o1_five_generations.yaml"))
    assert differences(replay(sc, tree).final, replay(sc, get("v5.10")).final)
    sc = loads(DONTUNMAP_FILE, "dontunmap-file.yaml")
    for policy in (tree, get("v5.10-stable")):
        with pytest.raises(ReplayError, match="EINVAL"):
            replay(sc, policy)
    assert [v.name for v in replay(sc, get("v6.1")).final.process("P").vmas] == ["F", "F.1"]
    sc = loads(DONTUNMAP_FILE.replace("{mremap: P/F, flags: [maymove, dontunmap], to: 0x40000}",
                                      "{mremap: P, start: 0x30000, pages: 2, flags: [maymove, "
                                      "fixed], to: 0x31000}"), "nothing-there.yaml")
    for policy, errno in ((tree, "EINVAL"), (get("v5.10-stable"), "EINVAL"),
                          (get("v6.1"), "EFAULT")):
        with pytest.raises(ReplayError, match=errno):
            replay(sc, policy)


DONTUNMAP_FILE = """
description: MREMAP_DONTUNMAP of a private file mapping (refused before v5.13)
processes:
  - name: P
    vmas:
      - {name: F, start: 0x10000, pages: 1, prot: r, file: lib.so}
steps:
  - {mremap: P/F, flags: [maymove, dontunmap], to: 0x40000}
"""


class TreesMatchPython(Steps):
    """Random sequences, every step of the machine (merge flags and enomem on every syscall
    included): each tree's final snapshot equals its Python policy's."""

    @classmethod
    def policies(cls) -> dict[str, Policy]:
        out = {REFERENCE: get(REFERENCE)}
        for version, python in TREES.items():
            if tarball(version) is not None and shutil.which("gcc") is not None:
                out[f"tree-{version}"] = tree_policy(version)
                out[python] = get(python)
        return out

    @invariant()
    def trees_match(self) -> None:
        for version, python in TREES.items():
            ours = self.replays.get(f"tree-{version}")
            if ours is None:
                continue
            problems = differences(ours.final, self.replays[python].final)
            if problems:
                raise AssertionError(self.explain(f"tree {version} differs from {python}",
                                                  problems))


def test_random_sequences_match() -> None:
    if not any(tarball(v) for v in TREES) or shutil.which("gcc") is None:
        pytest.skip("no Debian tree in ~/.cache/anondiff/debian/, or no gcc")
    TreesMatchPython.TestCase.settings = settings(max_examples=40, stateful_step_count=25,
                                                  deadline=None)
    TreesMatchPython.TestCase().runTest()


MERGE_CASE_1 = """
description: a faulted VMA merging into an unfaulted neighbour (is_mergeable_anon_vma case 1); both stay writable so that v6.7+ keeps VM_ACCOUNT on both
processes:
  - name: P
    vmas:
      - {name: A, start: 0x10000, pages: 1, prot: rw, faulted: true}
      - {name: B, start: 0x11000, pages: 1, prot: rw, flags: [dontcopy]}
steps:
  - madvise: P/A
    advice: dontfork
"""


def test_6_12_keeps_the_old_merge_rule() -> None:
    """Debian's 6.12.117 has the three-argument is_mergeable_anon_vma() of v6.1, not the
    three-case rule of the 2025 fix that split-counters (6.18.y) models: A does not merge
    into the unfaulted B under 6.12, and does under 7.2."""
    from anondiff.scenario import loads
    sc = loads(MERGE_CASE_1, "merge-case-1.yaml")
    old = replay(sc, tree_policy("6.12")).final
    assert not differences(old, replay(sc, get("v6.12")).final)
    assert differences(old, replay(sc, get("split-counters")).final)
    assert [v.name for v in old.processes[0].vmas] == ["A", "B"]
    new = replay(sc, tree_policy("7.2")).final
    assert [v.name for v in new.processes[0].vmas] == ["B"]


ACCOUNT_RULE = """
description: an unfaulted private VMA made read-only loses VM_ACCOUNT from v6.7
processes:
  - name: P
    vmas:
      - {name: A, start: 0x10000, pages: 1, prot: rw}
steps:
  - mprotect: P/A
    prot: r
"""


@pytest.mark.parametrize("version, unaccounts", [("6.1", False), ("6.12", True), ("7.2", True)])
def test_mprotect_account_rule_read_from_the_tree(version: str, unaccounts: bool) -> None:
    """Read from the tree's mprotect_fixup(), commit 9b9143298585 (v6.7)."""
    from anondiff.scenario import loads
    final = replay(loads(ACCOUNT_RULE, "account.yaml"), tree_policy(version)).final
    assert ("account" in final.processes[0].vmas[0].flags) is not unaccounts


@pytest.mark.parametrize("version", sorted(TREES))
def test_find_mergeable_anon_vma_hook_is_the_trees(version: str) -> None:
    """The hook answers with the tree's find_mergeable_anon_vma(): the next VMA first, then the
    previous one, only an adjacent, compatible VMA with a singular chain."""
    from anondiff.engine import _Replayer
    from anondiff.scenario import loads
    tree = tree_policy(version)
    sc = loads("""
description: find_mergeable_anon_vma() neighbours
processes:
  - name: P
    vmas:
      - {name: A, start: 0x10000, pages: 1, prot: rw, faulted: true}
      - {name: B, start: 0x11000, pages: 1, prot: rw}
      - {name: C, start: 0x12000, pages: 1, prot: rw, faulted: true}
      - {name: D, start: 0x14000, pages: 1, prot: rw}
steps: []
""", "find.yaml")
    r = _Replayer(sc, tree)
    r.run()
    mm = r.k.mms["P"]
    a, b, c, d = mm.vmas
    assert tree.find_mergeable_anon_vma(b, a, c) is c.anon_vma
    assert tree.find_mergeable_anon_vma(b, a, None) is a.anon_vma
    assert tree.find_mergeable_anon_vma(d, c, None) is None      # a gap below D


@pytest.mark.parametrize("version", sorted(TREES))
def test_incremental_checks_see_what_the_tree_changed(version: str) -> None:
    """The binding notes what each C call changed (Kernel.dirty_vmas/dirty_avs), so the
    incremental invariant checks equal the full recount after every step of every scenario."""
    from .test_incremental_checks import Verifying
    from anondiff.scenario import loads
    tree = tree_policy(version)
    for path in SCENARIOS:
        sc = load(str(ROOT / path))
        assert Verifying(sc, tree, "incremental").run() == replay(sc, tree, checks="full"), path
    # found by TreesMatchPython before the binding noted its changes: a stale I4 on 6.1
    generations = "".join(f"  - {{fork: C{g}, child: C{g + 1}}}\n  - {{exit: C{g}}}\n"
                          for g in range(4, 14))
    sc = loads(FORK_EXIT_CHAIN + generations + "  - {write: C14/v2, pages: none}\n",
               "chain.yaml")
    assert Verifying(sc, tree, "incremental").run() == replay(sc, tree, checks="full")


FORK_EXIT_CHAIN = """
description: a fork-then-exit chain, then a fault next to an old anon_vma
processes:
  - name: P
    vmas:
      - {name: v2, start: 0x10000, pages: 1, prot: r}
      - {name: v3, start: 0x11000, pages: 1, prot: r, faulted: true}
      - {name: v1, start: 0x17000, pages: 1, prot: r, faulted: true}
steps:
  - {fork: P, child: C4}
  - {exit: P}
"""


def count_bulk_forks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Binding._apply_fork (the bulk reader of a fork's sections) made to count its calls, in
    the one item of the list returned."""
    from anondiff.ktree import binding
    calls = [0]
    apply_fork = binding.Binding._apply_fork

    def counting(self, *args):  # type: ignore[no-untyped-def]
        calls[0] += 1
        return apply_fork(self, *args)

    monkeypatch.setattr(binding.Binding, "_apply_fork", counting)
    return calls


@pytest.mark.parametrize("version", sorted(TREES))
def test_bulk_fork_readback_equals_record_by_record(version: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A fork's records read back split by kind and applied in bulk (chains taken from the
    insertions, or looked up) give the snapshots the record-by-record readback gives, in
    every shipped scenario; and the bulk reader is the one forks take."""
    from anondiff.ktree import binding
    tree = tree_policy(version)
    bulk = count_bulk_forks(monkeypatch)
    runs: dict[str, list[list[Topology]]] = {}
    for mode, bulk_fork, own_chains in (("own", True, True), ("lookup", True, False),
                                        ("records", False, True)):
        monkeypatch.setattr(binding.Binding, "bulk_fork", bulk_fork)
        monkeypatch.setattr(binding.Binding, "own_chains", own_chains)
        runs[mode] = [replay(load(str(ROOT / path)), tree).snapshots for path in SCENARIOS]
        if mode == "lookup":
            assert bulk[0] > 40, f"the bulk reader took only {bulk[0]} forks"
            forks_in_bulk = bulk[0]
    assert bulk[0] == forks_in_bulk    # (bulk_fork False: never)
    for path, own, lookup, records in zip(SCENARIOS, runs["own"], runs["lookup"],
                                          runs["records"]):
        assert own == records, path
        assert lookup == records, path


def wide_fork_scenario(vmas: int = 300, generations: int = 11) -> str:
    """Forks whose sections hold what a run of like neighbours does not: VMAs that C numbered
    against the address order (written from the top down: negative differences), gaps,
    unfaulted VMAs among faulted ones, numbers past a byte (several bytes a value), then a
    fork chain deeper than the eight places an insertion's anon_vma is told by
    (readback.POS)."""
    lines = ["description: forks with values of every width", "processes:", "  - name: P",
             "    vmas:"]
    for i in range(vmas):
        start = 0x100000 + i * 0x10000 + (i % 7) * 0x1000 + (i // 50) * 0x10000000
        prot = "rw" if i % 3 else "r"
        lines.append(f"      - {{name: v{i}, start: {start:#x}, pages: {1 + i % 2}, "
                     f"prot: {prot}, faulted: {'true' if i % 4 == 1 else 'false'}}}")
    lines.append("steps:")
    lines += [f"  - {{write: P/v{i}}}" for i in range(vmas - 1, -1, -5)]
    lines.append("  - {fork: P, child: G0}")
    lines += [f"  - {{write: G0/v{i}}}" for i in range(0, vmas, 3)]
    for g in range(generations):
        lines.append(f"  - {{fork: G{g}, child: G{g + 1}}}")
        if g % 2:
            lines.append(f"  - {{exit: G{g}}}")
    lines.append("  - {fork: P, child: Q}")
    return "\n".join(lines) + "\n"


def replays_by_reader(sc, tree, monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
                      modes: tuple[tuple[str, bool, bool, bool], ...]) -> dict:
    """The snapshots of ``sc`` under ``tree`` for each (name, bulk_fork, own_chains, sections
    as bytes) way of reading a fork back."""
    from anondiff.ktree import binding
    runs = {}
    for mode, bulk_fork, own_chains, as_bytes in modes:
        monkeypatch.setattr(binding.Binding, "bulk_fork", bulk_fork)
        monkeypatch.setattr(binding.Binding, "own_chains", own_chains)
        monkeypatch.setattr(binding, "_READBACK_COMPILED", as_bytes)
        runs[mode] = replay(sc, tree).snapshots
    return runs


@pytest.mark.parametrize("version", sorted(TREES))
def test_bulk_fork_sections_of_every_width(version: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The bulk reader (its chains taken from the insertions, or looked up) and the record
    reader agree on forks whose sections need more than a byte a value, go backwards, and
    name an anon_vma past the eighth place of a pair's insertions; and the bulk reader took
    most of its forks."""
    from anondiff.scenario import loads
    tree = tree_policy(version)
    sc = loads(wide_fork_scenario(), "wide.yaml")
    bulk = count_bulk_forks(monkeypatch)
    # the sections read as bytes (the compiled readback's way) and as C decodes them (the
    # Python readback's), whichever this readback is
    runs = replays_by_reader(sc, tree, monkeypatch, (
        ("own", True, True, True), ("own, decoded", True, True, False),
        ("lookup", True, False, True), ("lookup, decoded", True, False, False),
        ("records", False, True, True)))
    # (13 forks a run; 7.2 frees the anon_vma it preallocated where it reuses one: such a fork
    # is read record by record)
    assert bulk[0] >= 4 * 10, bulk[0]
    for mode in ("own", "own, decoded", "lookup", "lookup, decoded"):
        assert runs[mode] == runs["records"], mode
    # (a chain deeper than readback.POS places: the last generation's)
    final = runs["own"][-1]
    assert max(len(v.chain) for p in final.processes for v in p.vmas) > 8
    assert not differences(final, replay(sc, get(TREES[version])).final)


def like_neighbours_scenario(vmas: int = 64) -> str:
    """One faulted mapping split into one-page VMAs of alternating protections (the 65,024-VMA
    benchmark's layout, small), forked twice: each fork's pairs are one run of like vectors
    (glue.c: kt_flush_pairs()), the second's with three insertions a pair."""
    lines = ["description: like neighbours", "processes:", "  - name: P", "    vmas:"]
    for i in range(vmas):
        lines.append(f"      - {{name: v{i}, start: {0x100000 + i * 0x1000:#x}, pages: 1, "
                     f"prot: {'rw' if i % 2 == 0 else 'r'}, faulted: true, anon_vma: AV0}}")
    lines += ["steps:", "  - {fork: P, child: C}", "  - {fork: C, child: G}", "  - {exit: C}",
              "  - {fork: G, child: H}"]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("version", sorted(TREES))
def test_bulk_fork_runs_of_like_neighbours(version: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Forks read back as runs of like pairs (each run's shared anon_vmas looked up once, the
    new ones made one after another) give what the record-by-record readback gives, and what
    the era's Python policy gives; the bulk reader took the forks with no free in them."""
    from anondiff.scenario import loads
    tree = tree_policy(version)
    sc = loads(like_neighbours_scenario(), "like.yaml")
    bulk = count_bulk_forks(monkeypatch)
    runs = replays_by_reader(sc, tree, monkeypatch, (
        ("own", True, True, True), ("own, decoded", True, True, False),
        ("lookup", True, False, True), ("records", False, True, True)))
    # (7.2 reuses an exited parent's anon_vma in the last fork, freeing the one it
    # preallocated: that fork is read record by record)
    assert bulk[0] >= 3 * 2, bulk[0]
    for mode in ("own", "own, decoded", "lookup"):
        assert runs[mode] == runs["records"], mode
    assert not differences(runs["own"][-1], replay(sc, get(TREES[version])).final)


def fork_layout(dontcopy: str | None = None) -> tuple:  # type: ignore[type-arg]
    """A parent whose VMAs have every kind of field C is told (numbers C knows and does not,
    gaps, lengths past a byte, prot and flag sets of their own, flags the shim has no bit for,
    files, anon_vmas known, unknown and none), with ``dontcopy`` on one of them if given; the
    binding's tables for them."""
    from anondiff.kernel.objects import AnonVma, Mm, Vma
    from anondiff.ktree import binding
    parent, child = Mm("P"), Mm("C")
    avs = [AnonVma() for _ in range(3)]
    av_at: list = [None, avs[0], None, avs[1]]   # avs[2]: not known to C
    vma_at: list = [None]
    flag_sets = [(), ("account",), ("shared",), ("softdirty", "account"), ("guard",),
                 ("shared", "account", "close")]
    start = 0x100
    for i in range(40):
        prot = frozenset(("read", "write") if i % 3 else ("read",))
        flags = set(flag_sets[i % len(flag_sets)])
        if dontcopy is not None and i == 17:
            flags.add(dontcopy)
        pages = 1 + (i % 5) * 70
        vma = Vma(parent, start, start + pages, start + (i % 4 - 1), prot, frozenset(flags),
                  None if i % 6 else f"lib{i % 4}.so", f"v{i}")
        vma.anon_vma = [avs[0], avs[1], avs[2], None][i % 4]
        if i % 5:
            vma.kt = len(vma_at)
            vma_at.append(vma)
        parent.vmas.append(vma)
        parent.starts.append(start)
        start += pages + (i % 3) * 300
    rename = {v.name: v.name + "c" for v in parent.vmas}
    for n, av in enumerate(av_at):
        if av is not None:
            av.kt = n
    return (parent, child, rename, vma_at, binding._FlagBits(), binding._FileIds({None: 0}),
            av_at, {})


@pytest.mark.parametrize("renamed", [True, False])
@pytest.mark.parametrize("dontcopy", [None, "dontcopy", "wipeonfork"])
def test_dup_fork_gives_c_what_the_two_passes_give(dontcopy: str | None, renamed: bool) -> None:
    """One pass over the parent's VMAs (readback.dup_fork(): the copies and the parents' words
    for kt_fork_all()) gives the copies dup_vmas() gives, under the names given or the
    parent's, and the words, wide values and bases fork_columns() gives, field for field: C is
    told the same parents."""
    from anondiff.ktree import readback
    parent, child, rename, vma_at, flag_bits, file_id, av_at, av_odd = fork_layout(dontcopy)
    copies, tmps, wipes, children, parents, columns = readback.dup_fork(
        parent, child, rename if renamed else None, vma_at, flag_bits, file_id, av_at, av_odd)
    parent2, child2, rename2, vma_at2, flag_bits2, file_id2, av_at2, av_odd2 = fork_layout(dontcopy)
    copies2, tmps2, wipes2, children2, parents2 = readback.dup_vmas(
        parent2, child2, rename2 if renamed else None)
    columns2 = readback.fork_columns(parents2, vma_at2, flag_bits2, file_id2, av_at2, av_odd2)

    def shape(vmas: list) -> list:  # type: ignore[type-arg]
        return [(v.mm.name, v.start, v.end, v.pgoff, v.prot, v.flags, v.file, v.name,
                 v.anon_vma) for v in vmas]

    assert [v.name for v in copies] == [v.name for v in copies2]
    assert [v.name for v in tmps] == [v.name + ("c" if renamed else "") for v in copies]
    assert shape(tmps) == shape(tmps2) and shape(children) == shape(children2)
    assert [v.name for v in parents] == [v.name for v in parents2] and wipes == wipes2
    assert len(copies) == (39 if dontcopy == "dontcopy" else 40)
    assert len(parents) == (40 if dontcopy is None else 39)
    assert wipes.count(True) == (1 if dontcopy == "wipeonfork" else 0)
    assert list(columns[0]) == list(columns2[0]) and columns[1:] == columns2[1:]
    assert columns[1], "no field past a byte: the test does not reach the wide values"
    # the flags the shim has bits for, and those it has not (softdirty, guard, close: none)
    # (read 1, write 2, shared 8, account 32)
    assert {(w >> 32) & 255 for w in columns[0]} == {1, 1 | 2, 8 | 2 | 1, 32 | 1, 32 | 2 | 1,
                                                     32 | 8 | 2 | 1}
