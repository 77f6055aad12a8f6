"""Kernel rules pinned by the kernel's own tests, translated, and by small scenarios whose
docstring gives the kernel reason.  Each one fails when its rule is changed (issue 12's two
survivors first)."""
from __future__ import annotations

from pathlib import Path

import pytest

from anondiff.engine import _Replayer, replay
from anondiff.kernel import checks
from anondiff.kernel.fork import ForkContext
from anondiff.kernel.objects import AnonVma, Vma
from anondiff.kernel.rmap import drop_anon_vma
from anondiff.kernel.state import Kernel
from anondiff.policies import ERA_VARIANTS, get, names
from anondiff.policies.clone_rework_2026 import CloneRework2026
from anondiff.policies.split_counters import SplitCountersPolicy
from anondiff.scenario import load, loads
from anondiff.topology import Topology

ROOT = Path(__file__).resolve().parent.parent

EVERY = names() + [c.name for c in ERA_VARIANTS]


def run(text: str, policy: str) -> Topology:
    return replay(loads(text, "rules.yaml"), policy).final


def spans(t: Topology, proc: str) -> list[tuple[int, int]]:
    return [(v.start, v.end) for v in t.process(proc).vmas]


# LTP testcases/kernel/mem/vma/vma01.c: t = mmap(3 pages, PROT_WRITE), written; fork; the child
# writes t, maps u = mmap(t + 3 pages, 3 pages, PROT_WRITE) and writes u: /proc/self/maps must
# show two 3-page VMAs.
VMA01 = """
description: LTP vma01
processes:
  - name: P
    vmas:
      - {name: t, start: 0x100000, pages: 3, prot: w, faulted: [0]}
steps:
  - {fork: P, child: C}
  - {write: C/t, pages: [0]}
  - {mmap: C, name: u, start: 0x103000, pages: 3, prot: w}
  - {write: C/u, pages: [0]}
""".replace(", pages_faulted: [0]", "")


@pytest.mark.parametrize("policy", EVERY)
def test_ltp_vma01_a_cloned_vma_does_not_merge(policy: str) -> None:
    """commit 965f55dea0e3 ("mmap: avoid merging cloned VMAs"): is_mergeable_anon_vma() lets
    a VMA without anon_vma merge into one that has one only if that one's chain is singular
    (list_is_singular); the child's t has [own, parent's].  The 2025 three-case rule keeps it
    (case 2: the target is a fork child)."""
    t = run(VMA01, policy)
    assert spans(t, "C") == [(0x100000, 0x103000), (0x103000, 0x106000)]


# tools/testing/selftests/mm/merge.c, TEST_F(merge, forked_target_vma): 5 pages mapped RW,
# page 0 written, fork; the child writes all 5 pages and maps 5 more RW right after: not merged.
FORKED_TARGET = """
description: merge.c forked_target_vma
processes:
  - name: P
    vmas:
      - {name: ptr, start: 0x201000, pages: 5, prot: rw, faulted: [0]}
steps:
  - {fork: P, child: C}
  - {write: C/ptr}
  - {mmap: C, name: ptr2, start: 0x206000, pages: 5, prot: rw}
"""


@pytest.mark.parametrize("policy", EVERY)
def test_merge_c_forked_target_vma(policy: str) -> None:
    """The same rule from the target's side (commit 965f55dea0e3; case 2 of the three-case
    rule): ptr in the child is a fork child, ptr2 may not be merged into it."""
    t = run(FORKED_TARGET, policy)
    assert spans(t, "C")[0] == (0x201000, 0x206000)


# merge.c, TEST_F(merge, forked_source_vma): the child maps ptr2 RWX after the forked ptr, then
# makes ptr RWX too: no merge, because ptr (the source of the merge) was forked.
FORKED_SOURCE = """
description: merge.c forked_source_vma
processes:
  - name: P
    vmas:
      - {name: ptr, start: 0x201000, pages: 5, prot: rw, faulted: [0]}
steps:
  - {fork: P, child: C}
  - {write: C/ptr}
  - {mmap: C, name: ptr2, start: 0x206000, pages: 5, prot: rwx}
  - {mprotect: C/ptr, prot: rwx}
"""


@pytest.mark.parametrize("policy", EVERY)
def test_merge_c_forked_source_vma(policy: str) -> None:
    """Case 1 of the three-case rule (target without anon_vma, source a fork child: refused,
    else ptr2 would import an anon_vma whose chain it cannot copy); the old rule refuses it
    too (the target's empty chain is not singular)."""
    t = run(FORKED_SOURCE, policy)
    assert spans(t, "C") == [(0x201000, 0x206000), (0x206000, 0x20b000)]


EXCLUSIVE_AFTER_PARENT_EXIT = """
description: the parent exits; the child's write finds the page exclusively its own
processes:
  - name: P
    vmas:
      - {name: A, start: 0x10000, pages: 1, prot: rw, faulted: true, anon_vma: AV0}
steps:
  - {fork: P, child: C}
  - {exit: P}
  - {write: C/A}
"""


@pytest.mark.parametrize("policy", EVERY)
def test_write_to_an_exclusive_page_moves_it_to_the_vmas_anon_vma(policy: str) -> None:
    """do_wp_page() reuses a page only one VMA maps and moves it to that VMA's anon_vma
    (page_move_anon_rmap(), since commit c44b674323f4 ("rmap: move exclusively owned pages to
    own anon_vma in do_wp_page()"); folio_move_anon_rmap() today): no copy, and the page now
    belongs to C's own anon_vma, not the exited parent's AV0."""
    t = run(EXCLUSIVE_AFTER_PARENT_EXIT, policy)
    a = t.vma("C/A")
    assert [p.name for p in a.pages] == ["pg0"]
    assert a.pages[0].mapping == a.anon_vma != "AV0"


@pytest.mark.parametrize("counters,values,expected", [
    ("DegreeCounters", {"degree": 2}, ["anon_vma->degree (2)"]),
    ("SplitCounters", {"num_children": 1}, ["anon_vma->num_children (1)"]),
    ("SplitCounters", {"num_active_vmas": 3}, ["anon_vma->num_active_vmas (3)"]),
    ("SplitCounters", {"num_children": 1, "num_active_vmas": 1},
     ["anon_vma->num_children (1)", "anon_vma->num_active_vmas (1)"]),
    ("SplitCounters", {}, []),
])
def test_unlink_phase_two_warns_with_the_counter_and_its_value(
        counters: str, values: dict[str, int], expected: list[str]) -> None:
    """unlink_anon_vmas() phase 2: VM_WARN_ON(anon_vma->degree) (commit 7a3ef208e662), then
    VM_WARN_ON(anon_vma->num_children) and VM_WARN_ON(anon_vma->num_active_vmas) (commit
    2555283eb40d), each naming the counter left over.  No correct policy reaches them, so no
    scenario shows them: the text a user would see is pinned here."""
    from anondiff.kernel import counters as module
    from anondiff.kernel.objects import AnonVma

    av = AnonVma()
    for field, value in values.items():
        setattr(av, field, value)
    assert getattr(module, counters)().warnings_at_free(av) == expected


MREMAP_SELF_MERGE = """
description: found by anondiff search; an unfaulted VMA moved next to itself and a faulted one
processes:
  - name: P
    vmas:
      - {name: SRC1, start: 0x10000, pages: 1, prot: rw}
      - {name: SRC2, start: 0x12000, pages: 1, prot: rw, faulted: []}
steps:
  - {mremap: P/SRC1, flags: [maymove, fixed], to: 0x11000}
"""


@pytest.mark.parametrize("policy", EVERY)
def test_mremap_of_an_unfaulted_vma_may_merge_with_itself(policy: str) -> None:
    """copy_vma() decides faulted_in_anon_vma before vma_merge_new_range(): an unfaulted
    anonymous VMA (its pgoff reset to the destination) may merge with itself and import a
    neighbour's anon_vma on the way, which is no VM_BUG_ON_VMA (mm/vma.c copy_vma())."""
    t = run(MREMAP_SELF_MERGE, policy)
    assert not [f for f in t.findings if f.kind == "VM_BUG_ON"]


SHARED_ANON = """
description: two adjacent MAP_SHARED|MAP_ANONYMOUS mappings, and one split and joined again
processes:
  - name: P
    vmas:
      - {name: A, start: 0x10000, pages: 2, prot: rw, shared: true}
steps:
  - {mmap: P, name: B, start: 0x12000, pages: 1, prot: rw, shared: true}
  - {mprotect: P/A, offset: 1, pages: 1, prot: r}
  - {mprotect: P, start: 0x11000, end: 0x12000, prot: rw}
"""


@pytest.mark.parametrize("policy", EVERY)
def test_shared_anonymous_mappings_merge_only_with_their_own_pieces(policy: str) -> None:
    """mmap(MAP_SHARED|MAP_ANONYMOUS) gives each mapping a shmem file of its own
    (shmem_zero_setup()), and vma_merge() needs the same vm_file: B never joins A (seen on the
    live 6.18 kernel by anondiff live), while A's two pieces, one file, merge back."""
    t = run(SHARED_ANON, policy)
    assert spans(t, "P") == [(0x10000, 0x12000), (0x12000, 0x13000)]
    assert all("file" not in v.flags for v in t.process("P").vmas)


# -- the events a replay reports where the kernel would touch freed memory or warn -------------
# (issue 12: the survivors of unlink_anon_vmas(), new_child_anon_vma(), anon_vma_chain_link()
# and rekey() were their reports: `anondiff run` and `explain` list each event as a finding)

def events(t: Topology, *kinds: str) -> list[tuple[str, str, str, int]]:
    return [(f.kind, f.where, f.detail, f.step) for f in t.findings if f.kind in kinds]


class ForgetsRootRef(SplitCountersPolicy):
    """A user's policy file with a bug: anon_vma_fork() without get_anon_vma(anon_vma->root),
    the reference commit 76545066c852 ("mm: extend KSM refcounts to the anon_vma root")
    added, so the root is freed while its fork children still link it."""

    name = "forgets-root-ref"

    def anon_vma_fork(self, k: Kernel, vma: Vma, pvma: Vma, ctx: ForkContext) -> None:
        super().anon_vma_fork(k, vma, pvma, ctx)
        av = vma.anon_vma
        if av is not None and all(avc.anon_vma is not av for avc in pvma.avcs):
            av.root.refcount -= 1           # a new child: its get_anon_vma(root) undone


FORKED = """
description: P's faulted A forked
processes:
  - name: P
    vmas:
      - {name: A, start: 0x10000, pages: 2, prot: rw, faulted: true}
steps:
  - {fork: P, child: C1}
"""
# P's A (root AV1) is forked to C1 (AV2) and C2 (AV3); with no reference of theirs on AV1, its
# refcount is 1, its own, after P's munmap (its tree still holds C1's and C2's links), and C1's
# exit drops it: put_anon_vma(AV2) puts the root too, freed while C2/A still links it.
ROOT_FREED = FORKED + """  - {fork: P, child: C2}
  - munmap: P/A
  - exit: C1
"""
FREED_AV1 = ("I7-UAF", "C2/A", "chain links freed AV1", 4)


@pytest.mark.parametrize("step,expected", [
    ("exit: C2", [
        ("UAF", "C2/A", "unlink_anon_vmas: chain links freed AV1", 5),
        ("UAF", "AV1", "put_anon_vma on a freed anon_vma", 5),
        ("UAF", "AV1", "put_anon_vma on a freed anon_vma", 5)]),
    ("{mprotect: C2/A, pages: 1, prot: r, names: [B]}", [
        ("UAF", "C2/B", "anon_vma_interval_tree_insert into freed AV1", 5),
        ("UAF", "C2/A", "anon_vma_interval_tree_remove/insert (re-key) in freed AV1", 5)]),
    ("{fork: C2, child: C3}", [
        ("UAF", "C3/A", "anon_vma_interval_tree_insert into freed AV1", 5),
        ("UAF", "C3/A", "anon_vma_fork: the parent VMA's anon_vma AV3 (root AV1) is freed: "
                        "get_anon_vma() writes freed memory", 5)]),
], ids=["unlink", "split", "fork"])
def test_a_chain_linking_a_freed_root_is_a_use_after_free(
        step: str, expected: list[tuple[str, str, str, int]]) -> None:
    """Every kernel path that walks C2/A's chain then touches the freed AV1, and the report
    names the VMA and the anon_vma: unlink_anon_vmas() takes C2's chain out of AV1's interval
    tree (anon_vma_interval_tree_remove()), then, AV1's tree empty, puts it in phase 2 and
    put_anon_vma(AV3) puts its root once more; a split (__split_vma()) links the new piece B
    into AV1's tree (anon_vma_chain_link() from anon_vma_clone()) and re-keys A's chains
    (anon_vma_interval_tree_pre/post_update_vma()); a fork links the copy into AV1's tree and
    anon_vma_fork()'s get_anon_vma(anon_vma->root) writes AV1's refcount, although the
    parent VMA's anon_vma AV3 is alive.  The free itself is reported at once, by the
    incremental checks, against the VMA whose chain still links AV1 (spec I7)."""
    t = replay(loads(ROOT_FREED + f"  - {step}\n", "rules.yaml"), ForgetsRootRef()).final
    assert events(t, "UAF") == expected
    assert FREED_AV1 in events(t, "I7-UAF")


class ForgetsAnonVma(CloneRework2026):
    """A user's policy file with a bug: the fork child's VMA gets its chain but is left with
    ``vma->anon_vma`` NULL."""

    name = "forgets-anon-vma"

    def anon_vma_fork(self, k: Kernel, vma: Vma, pvma: Vma, ctx: ForkContext) -> None:
        super().anon_vma_fork(k, vma, pvma, ctx)
        drop_anon_vma(vma)


def test_2026_unlink_of_a_vma_without_anon_vma_warns_about_its_chain() -> None:
    """The 2026 rework's unlink_anon_vmas() (clone-rework-2026: Lorenzo Stoakes, "mm: clean up
    anon_vma implementation", mm/rmap.c@7.2.13) returns at once for a VMA without anon_vma,
    with a VM_WARN_ON_ONCE if its chain is not empty (the chain is leaked): the warning names
    the VMA, and C1/A goes without its chain being taken out of AV1's tree."""
    t = replay(loads(FORKED + "  - exit: C1\n", "rules.yaml"), ForgetsAnonVma()).final
    assert events(t, "VM_WARN_ON_ONCE") == [
        ("VM_WARN_ON_ONCE", "C1/A", "unlink_anon_vmas: no anon_vma but a chain", 2)]
    assert t.anon_vma("AV1").tree == ("P/A", "C1/A")


def test_wei_intended_forks_from_a_freed_anon_vma() -> None:
    """scenarios/found/wei-intended-uaf-root-ref.yaml (found by tests/test_stateful.py): under
    wei-intended C15/v1.1 keeps AV9, which its chain does not hold, after AV9 is freed; C15's
    fork runs anon_vma_fork() on it (get_anon_vma() of the freed root AV9) and C15's exit runs
    unlink_anon_vmas(), whose vma->anon_vma->degree-- (commit 7a3ef208e662) writes AV9: each
    reported against the VMA worked on (the child's copy C16/v1.1, then C15/v1.1), naming
    AV9."""
    sc = load(str(ROOT / "scenarios" / "found" / "wei-intended-uaf-root-ref.yaml"))
    assert events(replay(sc, "wei-intended").final, "UAF") == [
        ("UAF", "C16/v1.1", "anon_vma_fork: the parent VMA's anon_vma AV9 (root AV9) is freed: "
                            "get_anon_vma() writes freed memory", 25),
        ("UAF", "C15/v1.1", "unlink_anon_vmas: vma->anon_vma AV9 is freed", 26)]


ENOMEM_FORKS = """
description: two forks failing at anon_vma_fork()'s chain allocation
processes:
  - name: P
    vmas:
      - {name: A, start: 0x10000, pages: 2, prot: rw, faulted: true}
      - {name: B, start: 0x20000, pages: 2, prot: rw, faulted: true}
steps:
  - {fork: P, child: C}
  - {fork: C, child: G, enomem: 4}
  - {fork: C, child: G2, enomem: 4}
"""


@pytest.mark.parametrize("policy", ["degree", "split-counters"])
def test_each_failed_fork_adds_its_freed_anon_vma(policy: str) -> None:
    """anon_vma_fork() before 2026 (mm/rmap.c@v6.12.117, the same since commit 5beb49305251):
    C/A's chain has two entries, so the 4th allocation of the fork is the chain of the new
    anon_vma, and out_error_free_anon_vma puts that anon_vma, never linked.  The JSON output
    and the metrics count these (``transient_anon_vmas``): one per failed fork, two here."""
    t = run(ENOMEM_FORKS, policy)
    assert [f.detail for f in t.findings if f.kind == "NOTE"] == [
        "enomem: allocation 4 of the step (anon_vma_chain in anon_vma_fork()) fails: fork() "
        f"returns -ENOMEM; dup_mmap() stopped there and the partly built {g} was torn down"
        for g in ("G", "G2")]
    assert t.transient_anon_vmas == 2


def test_mremap_moves_the_first_page_of_a_sparse_vma() -> None:
    """move_page_tables() moves every pte of the old range, the first page's too, however few
    the mm's ptes are (Mm.pages_in() then scans the ptes, not the range)."""
    t = run("""
description: a 4-page VMA with only its first page written, moved
processes:
  - name: P
    vmas:
      - {name: A, start: 0x10000, pages: 4, prot: rw, faulted: [0]}
steps:
  - {mremap: P/A, flags: [maymove, fixed], to: 0x40000}
""", "split-counters")
    a = t.vma("P/A")
    assert (a.start, [(p.name, p.addr) for p in a.pages]) == (0x40000, [("pg0", 0x40000)])


# CVE-2022-42703 (scenarios/cve-2022-42703.yaml), with Y's first hi page moved away and back
# before the merge: Y's page table then holds pg1 after pg2, and lo spans more pages than Y has
# ptes.
CVE_MOVED_BACK = """
description: CVE-2022-42703, a page of Y's hi moved away and back before the merge
processes:
  - name: A
    vmas:
      - {name: lo, start: 0x7f0000000000, pages: 4, prot: rw, faulted: [0]}
steps:
  - {fork: A, child: B}
  - {fork: B, child: V}
  - munmap: B/lo
  - {fork: V, child: W}
  - {mprotect: W/lo, pages: 2, prot: r, names: [hi]}
  - {mprotect: V/lo, pages: 2, prot: r, names: [hi]}
  - {fork: W, child: X}
  - write: X/hi
  - munmap: V/lo
  - munmap: V/hi
  - {fork: X, child: Y}
  - {mremap: Y, start: 0x7f0000002000, end: 0x7f0000003000, flags: [maymove, fixed],
     to: 0x7f0000100000, name: away}
  - {mremap: Y/away, flags: [maymove, fixed], to: 0x7f0000002000}
  - {mprotect: Y/hi, prot: r}
"""


def test_rmap_misses_of_one_vma_come_in_address_order() -> None:
    """Under degree Y's two VMAs reuse one anon_vma with different chains, and Y's mprotect
    merges hi into lo (is_mergeable_anon_vma() compares only the anon_vma pointers:
    CVE-2022-42703, fixed by commit 2555283eb40d): both of X's pages that Y maps now point at
    an anon_vma outside lo's chain, two I6 findings of one step, listed by address whatever
    the order of Y's page table (Mm.pages_in() sorts the ptes it scans)."""
    t = run(CVE_MOVED_BACK, "degree")
    assert events(t, "I6") == [
        ("I6", "Y/lo", "pg1 mapping AV5 not in chain (rmap miss)", 14),
        ("I6", "Y/lo", "pg2 mapping AV5 not in chain (rmap miss)", 14)]
    assert [(p.name, p.addr) for p in t.vma("Y/lo").pages] == [
        ("pg0", 0x7f0000000000), ("pg1", 0x7f0000002000), ("pg2", 0x7f0000003000)]


def test_naming_an_anon_vma_renames_the_findings_about_it() -> None:
    """An anon_vma a VMA points at before anything links it (a policy's bug: P/b's anon_vma
    set, its chain left empty) is "(unnamed)" in the I2 finding; once linked it is named
    (Kernel.name()), and the incremental checks must then say which one, as the full recount
    does: they look at every VMA with a violation again whenever an anon_vma is named."""
    r = _Replayer(loads("""
description: a faulted VMA and an unfaulted one
processes:
  - name: P
    vmas:
      - {name: a, start: 0x10000, pages: 1, prot: rw, faulted: true}
      - {name: b, start: 0x20000, pages: 1, prot: rw}
""", "rules.yaml"), get("split-counters"), "incremental", False)
    r.steps()
    assert r.checker is not None
    b = r.k.mms["P"].by_name("b")
    assert b is not None
    av = b.anon_vma = AnonVma()
    av.refcount, av.num_active_vmas = 0, 1  # (no I4/I5 about it: only its name matters here)
    r.k.dirty_vmas.add(b)
    unnamed = ("I2", "P/b", "anon_vma (unnamed) not in own chain")
    assert r.checker.update() == ([unnamed], []) and checks.check(r.k) == [unnamed]
    r.k.name(av)
    named = ("I2", "P/b", "anon_vma AV2 not in own chain")
    assert checks.check(r.k) == [named]
    assert r.checker.update() == ([named], [unnamed])


@pytest.mark.parametrize("labels", [(), ("AV1",), ("AV2", "AV3", "AV6", "X7")])
def test_naming_in_bulk_is_naming_one_by_one(labels: tuple[str, ...]) -> None:
    """Kernel.name_many() (a compiled tree's fork names what it made in one call) names as
    name() does each in turn: the same numbers, skipping those the scenario's labels took
    (up to and including the highest), the same naming order, live, marked for the
    incremental checks; and an empty list names nothing."""
    one, bulk = Kernel(get("v6.1")), Kernel(get("v6.1"))
    for k in (one, bulk):
        for label in labels:
            k.reserve(label)
        k.name(AnonVma(), "AV0")
    earlier = AnonVma()
    one.name(earlier)
    bulk.name_many([earlier])
    bulk.dirty_avs.clear()
    bulk.named_any = False
    bulk.name_many([])
    assert not bulk.named_any and not bulk.dirty_avs and len(bulk.anon_vmas) == 2
    avs_one, avs_bulk = [AnonVma() for _ in range(6)], [AnonVma() for _ in range(6)]
    for av in avs_one:
        one.name(av)
    bulk.name_many(avs_bulk)
    assert [(a.name, a.seq) for a in avs_bulk] == [(a.name, a.seq) for a in avs_one]
    assert [a.name for a in bulk.anon_vmas] == [a.name for a in one.anon_vmas]
    assert bulk.anon_vmas[2:] == avs_bulk and bulk.live >= set(avs_bulk)
    assert bulk.dirty_avs == set(avs_bulk) and bulk.named_any
    after_one, after_bulk = AnonVma(), AnonVma()
    one.name(after_one)
    bulk.name(after_bulk)
    assert after_bulk.name == after_one.name


def test_naming_in_bulk_without_any_label() -> None:
    """Kernel.name_many() in a scenario that labels nothing (no number is taken): AV1, AV2, ...
    in order, as name() gives them."""
    k = Kernel(get("v6.1"))
    avs = [AnonVma() for _ in range(3)]
    k.name_many(avs)
    assert [a.name for a in avs] == ["AV1", "AV2", "AV3"] and k.anon_vmas == avs
