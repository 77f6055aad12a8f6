"""``enomem: N``: the N-th anon_vma / anon_vma_chain allocation of a step fails, and the error
paths run as each era wrote them.

Read in the Debian trees (~/.cache/anondiff/debian): mm/rmap.c@v6.12.117 (anon_vma_clone()'s
enomem_failure: ``dst->anon_vma = NULL; unlink_anon_vmas(dst)``; anon_vma_fork()'s
out_error_free_anon_vma / out_error), mm/rmap.c@7.2.13 (anon_vma_fork() allocates its
anon_vma and chain before anon_vma_clone(), which allocates every chain before inserting any and
on failure runs cleanup_partial_anon_vmas()), __anon_vma_prepare() (chain first, then the
anon_vma, in every era), kernel/fork.c@v6.12.117 and mm/mmap.c@7.2.13 dup_mmap() (a failed fork
tears the partly built mm down up to the failure point), mm/mmap.c@v6.1.176 vma_merge() (``if
(err) return NULL``) against mm/vma.c@v6.12.117 vma_modify() (``if (vmg_nomem(vmg)) return
ERR_PTR(-ENOMEM)``).  Like /proc/self/fail-nth, an N beyond the step's allocations fails nothing
and a note says how many there were.
"""
from __future__ import annotations

import pytest

from anondiff.engine import replay
from anondiff.errors import ReplayError, ScenarioError
from anondiff.policies import get
from anondiff.scenario import loads
from anondiff.topology import Topology

PRE_2026 = ("always-new", "degree", "v5.10", "v6.1", "v6.12", "split-counters", "mirror-parent")
CORRECT = ("always-new", "v6.1", "v6.12", "split-counters", "clone-rework-2026", "mirror-parent")
EVERY = PRE_2026 + ("clone-rework-2026",)
INFORMATIONAL = {"NOTE", "MERGED", "MERGE_REFUSED"}

#: P has two faulted VMAs and forks C: each of C's VMAs has a chain of two (its own anon_vma and
#: P's), so a fork of C allocates, per VMA, two chains in anon_vma_clone() plus an anon_vma and
#: its chain in anon_vma_fork() (no ancestor is reusable: P still uses AV1 and AV2).
LAYOUT = """description: enomem test
processes:
  - name: P
    vmas:
      - {name: A, start: 0x10000, pages: 2, prot: rw, faulted: true}
      - {name: B, start: 0x20000, pages: 2, prot: rw, faulted: true}
steps:
  - {fork: P, child: C}
"""


def run(steps: str, policy: str, layout: str = LAYOUT) -> Topology:
    return replay(loads(layout + steps, "e.yaml"), policy).final


def problems(t: Topology) -> list[str]:
    return [f"{f.kind} {f.where} {f.detail}" for f in t.findings if f.kind not in INFORMATIONAL]


def notes(t: Topology) -> list[str]:
    return [f.detail for f in t.findings if f.kind == "NOTE"]


def shape(t: Topology) -> tuple:
    """Processes and live anon_vmas, everything a user reads in the table."""
    return (t.processes, tuple(a for a in t.anon_vmas if not a.freed))


# -- fork ------------------------------------------------------------------------------------

#: which allocation of a fork of C is where, per era
ORDER_PRE_2026 = ["anon_vma_chain in anon_vma_clone", "anon_vma_chain in anon_vma_clone",
                  "anon_vma in anon_vma_fork", "anon_vma_chain in anon_vma_fork"] * 2
ORDER_2026 = ["anon_vma in anon_vma_fork", "anon_vma_chain in anon_vma_fork",
              "anon_vma_chain in anon_vma_clone", "anon_vma_chain in anon_vma_clone"] * 2


@pytest.mark.parametrize("policy", EVERY)
@pytest.mark.parametrize("nth", range(1, 9))
def test_fork_allocation_order(policy: str, nth: int) -> None:
    """Each era allocates in its own order: before 2026 anon_vma_clone() first, then
    anon_vma_fork()'s anon_vma and chain; in 2026 the anon_vma and chain are preallocated."""
    t = run(f"  - {{fork: C, child: G, enomem: {nth}}}\n", policy)
    order = ORDER_2026 if policy == "clone-rework-2026" else ORDER_PRE_2026
    assert [n for n in notes(t) if "enomem" in n] == [
        f"enomem: allocation {nth} of the step ({order[nth - 1]}()) fails: fork() returns "
        "-ENOMEM; dup_mmap() stopped there and the partly built G was torn down"]
    assert "G" not in {p.name for p in t.processes}


@pytest.mark.parametrize("policy", EVERY)
def test_fork_beyond_the_allocations_fails_nothing(policy: str) -> None:
    t = run("  - {fork: C, child: G, enomem: 9}\n", policy)
    assert notes(t) == ["enomem: 9: the step made 8 allocations; none failed"]
    assert [p.name for p in t.processes] == ["P", "C", "G"]


@pytest.mark.parametrize("policy", CORRECT)
@pytest.mark.parametrize("nth", range(1, 9))
def test_failed_fork_leaves_the_parent_as_it_was(policy: str, nth: int) -> None:
    """Whatever allocation fails, the partial chain is undone (unlink_anon_vmas() before 2026,
    cleanup_partial_anon_vmas() in 2026), the VMAs copied before it are torn down with the
    child's mm, and P and C are exactly as if the fork had never been tried: same VMAs, chains,
    counters, refcounts and interval trees, and no invariant broken."""
    failed = run(f"  - {{fork: C, child: G, enomem: {nth}}}\n", policy)
    untried = run("", policy)
    assert problems(failed) == []
    assert shape(failed) == shape(untried)
    # the first VMA was copied whole when the second one failed: its anon_vma was freed again
    freed = [a.name for a in failed.anon_vmas if a.freed]
    assert freed == (["AV5"] if nth > 4 else [])


@pytest.mark.parametrize("policy,nth,transient", [
    ("split-counters", 3, 0),      # out_error: anon_vma_alloc() failed, nothing to free
    ("split-counters", 4, 1),      # out_error_free_anon_vma: the unlinked anon_vma is put
    ("degree", 4, 1),
    ("clone-rework-2026", 1, 0),   # the preallocation itself failed
    ("clone-rework-2026", 2, 1),   # its chain failed: put_anon_vma(anon_vma)
    ("clone-rework-2026", 3, 1),   # anon_vma_clone() failed: rc != 0, put_anon_vma(anon_vma)
])
def test_anon_vmas_freed_unlinked(policy: str, nth: int, transient: int) -> None:
    """anon_vma_fork()'s error paths free an anon_vma that was never linked (counted with the
    2026 preallocations the JSON output reports)."""
    t = run(f"  - {{fork: C, child: G, enomem: {nth}}}\n", policy)
    base = run("", policy).transient_anon_vmas
    assert t.transient_anon_vmas - base == transient


def test_the_failed_child_does_not_exist_for_later_steps() -> None:
    with pytest.raises(ReplayError, match=r"e.yaml:10: steps\[2\]: no process 'G': its "
                       r"fork \(line 9\) failed with -ENOMEM"):
        run("  - {fork: C, child: G, enomem: 1}\n  - {exit: G}\n", "split-counters")


# -- page faults -------------------------------------------------------------------------------

FAULT_LAYOUT = """description: enomem fault
processes:
  - name: P
    vmas:
      - {name: A, start: 0x10000, pages: 1, prot: rw, faulted: true}
      - {name: N, start: 0x11000, pages: 1, prot: rw}
      - {name: Y, start: 0x20000, pages: 2, prot: rw}
steps:
"""


@pytest.mark.parametrize("policy", EVERY)
@pytest.mark.parametrize("nth,what", [(1, "anon_vma_chain"), (2, "anon_vma")])
def test_fault_fails_with_vm_fault_oom(policy: str, nth: int, what: str) -> None:
    """__anon_vma_prepare() allocates its chain first, then (no neighbour to share with) the
    anon_vma; either failing makes the fault VM_FAULT_OOM: no anon_vma, no page written."""
    t = run(f"  - {{write: P/Y, pages: [1, 0], enomem: {nth}}}\n", policy, FAULT_LAYOUT)
    y = t.vma("P/Y")
    assert (y.anon_vma, y.chain, y.pages) == (None, (), ())
    assert notes(t) == [f"enomem: allocation {nth} of the step ({what} in "
                        "__anon_vma_prepare()) fails: the fault returns VM_FAULT_OOM: that page "
                        "is not written"]
    assert problems(t) == []


@pytest.mark.parametrize("policy", EVERY)
def test_fault_sharing_a_neighbour_allocates_only_the_chain(policy: str) -> None:
    """find_mergeable_anon_vma() finds A's anon_vma for N (its compatible neighbour, singular
    chain): only the chain is allocated, so a second allocation never comes; Y, with no such
    neighbour, allocates both."""
    t = run("  - {write: P/N, enomem: 2}\n  - {write: P/Y, pages: [0, 1], enomem: 3}\n", policy,
            FAULT_LAYOUT)
    assert notes(t) == ["enomem: 2: the step made 1 allocation; none failed",
                        "enomem: 3: the step made 2 allocations; none failed"]
    assert t.vma("P/N").anon_vma == t.vma("P/A").anon_vma
    assert len(t.vma("P/Y").pages) == 2


# -- splits, merges, munmap, mremap ------------------------------------------------------------

@pytest.mark.parametrize("policy", EVERY)
def test_split_fails_and_the_vma_stays_whole(policy: str) -> None:
    """__split_vma()'s anon_vma_clone() fails on the second chain: the first is undone, the new
    VMA freed, mprotect() returns -ENOMEM with C/A untouched."""
    t = run("  - {mprotect: C/A, pages: 1, prot: r, enomem: 2}\n", policy)
    untried = run("", policy)
    assert shape(t) == shape(untried)
    assert notes(t) == ["enomem: allocation 2 of the step (anon_vma_chain in anon_vma_clone()) "
                        "fails: mprotect() returns -ENOMEM"]
    assert problems(t) == []


@pytest.mark.parametrize("policy", EVERY)
def test_munmap_keeps_the_split_made_before_the_failure(policy: str) -> None:
    """munmap of the middle page of C's 3-page A: the split at the start (two chains) is
    done, the one at the end fails on its first chain: -ENOMEM, nothing unmapped, the first split
    stays (do_vmi_align_munmap() before 6.12 and vms_gather_munmap_vmas() after alike)."""
    layout = LAYOUT.replace("pages: 2, prot: rw, faulted: true}\n      - {name: B",
                            "pages: 3, prot: rw, faulted: true}\n      - {name: B")
    t = run("  - {munmap: C/A, offset: 1, pages: 1, enomem: 3}\n", layout=layout, policy=policy)
    spans = [(v.start, v.end, len(v.pages)) for v in t.process("C").vmas]
    assert spans == [(0x10000, 0x11000, 1), (0x11000, 0x13000, 2), (0x20000, 0x22000, 2)]
    assert notes(t)[-1] == ("enomem: allocation 3 of the step (anon_vma_chain in "
                            "anon_vma_clone()) fails: munmap() returns -ENOMEM")
    assert problems(t) == []


MERGE_LAYOUT = """description: enomem merge
processes:
  - name: P
    vmas:
      - {name: A, start: 0x10000, pages: 1, prot: rw}
      - {name: B, start: 0x11000, pages: 1, prot: r}
      - {name: X, start: 0x12000, pages: 1, prot: rw, faulted: true}
steps:
"""


@pytest.mark.parametrize("policy", EVERY)
def test_merge_importing_an_anon_vma(policy: str) -> None:
    """Without a failure, mprotect B rw merges A, B and X into A, which imports X's anon_vma
    (dup_anon_vma(prev, next)): one allocation."""
    t = run("  - {mprotect: P/B, prot: rw, enomem: 2}\n", policy, MERGE_LAYOUT)
    assert [(v.name, v.anon_vma) for v in t.process("P").vmas] == [("A", "AV1")]
    assert notes(t)[-1] == "enomem: 2: the step made 1 allocation; none failed"


@pytest.mark.parametrize("policy", ("always-new", "degree", "v5.10", "v6.1"))
def test_failed_merge_before_6_12_splits_instead(policy: str) -> None:
    """Before v6.12 vma_merge() returns NULL when its anon_vma_clone() fails
    (mm/mmap.c@v6.1.176: ``if (err) return NULL;``) and mprotect_fixup() goes on without the
    merge: B becomes rw on its own, and mprotect() succeeds."""
    t = run("  - {mprotect: P/B, prot: rw, enomem: 1}\n", policy, MERGE_LAYOUT)
    assert [(v.name, v.prot) for v in t.process("P").vmas] == [
        ("A", ("read", "write")), ("B", ("read", "write")), ("X", ("read", "write"))]
    assert t.vma("P/A").anon_vma is None and t.vma("P/A").chain == ()
    assert any(n.startswith("vma_merge(): anon_vma_clone(A, X) failed") for n in notes(t))
    assert problems(t) == []


@pytest.mark.parametrize("policy", ("v6.12", "split-counters", "clone-rework-2026"))
def test_failed_merge_from_6_12_fails_mprotect(policy: str) -> None:
    """From v6.12 vma_merge_existing_range() records VMA_MERGE_ERROR_NOMEM and vma_modify()
    returns -ENOMEM (mm/vma.c@v6.12.117, mm/vma.c@7.2.13): B stays read-only."""
    t = run("  - {mprotect: P/B, prot: rw, enomem: 1}\n", policy, MERGE_LAYOUT)
    assert [(v.name, v.prot) for v in t.process("P").vmas] == [
        ("A", ("read", "write")), ("B", ("read",)), ("X", ("read", "write"))]
    assert (t.vma("P/A").anon_vma, t.vma("P/A").chain) == (None, ())
    assert notes(t)[-1] == ("enomem: allocation 1 of the step (anon_vma_chain in "
                            "anon_vma_clone()) fails: mprotect() returns -ENOMEM")
    assert problems(t) == []


@pytest.mark.parametrize("policy", EVERY)
def test_mremap_copy_fails_and_nothing_moves(policy: str) -> None:
    """copy_vma()'s anon_vma_clone() fails: the new VMA is freed and move_vma() returns
    -ENOMEM before any page table moved."""
    t = run("  - {mremap: C/A, flags: [maymove, fixed], to: 0x40000, enomem: 2}\n", policy)
    assert shape(t) == shape(run("", policy))
    assert notes(t)[-1].endswith("mremap() returns -ENOMEM")


# -- bad input -----------------------------------------------------------------------------------

@pytest.mark.parametrize("step,message", [
    ("{fork: C, child: G, enomem: 0}", r"steps\[1\].fork: 'enomem' 0 must be >= 1"),
    ("{fork: C, child: G, enomem: two}", "enomem"),
    ("{exit: C, enomem: 1}", "unknown key 'enomem'"),
    ("{spawn: S, enomem: 1}", "unknown key 'enomem'"),
])
def test_bad_enomem_is_a_scenario_error(step: str, message: str) -> None:
    with pytest.raises(ScenarioError, match=message) as e:
        loads(LAYOUT + f"  - {step}\n", "e.yaml")
    assert e.value.line == 9


@pytest.mark.parametrize("policy", EVERY)
def test_mremap_whose_old_range_cannot_be_split_still_moves(policy: str) -> None:
    """move_vma(): the copy is made and the page tables moved before the old range is
    unmapped; when that unmap cannot split the old VMA, ``/* OOM: unable to split vma, just get
    accounts right */`` and mremap() returns the new address (mm/mremap.c@v6.1.176, v6.12.117;
    unmap_source_vma() in 7.2.13): both VMAs stay, the old range without its pages.  The model
    said -ENOMEM (found by the AllPolicies state machine: the destination's page was gone)."""
    layout = ("      - {name: A, start: 0x10000, pages: 3, faulted: true}\n"
              "      - {name: D, start: 0x1c000, pages: 2, faulted: true}\n")
    step = ("  - {mremap: P, start: 0x11000, end: 0x13000, flags: [maymove, fixed], to: 0x1c000, "
            "name: R, enomem: 2}\n")
    t = replay(loads("description: x\nprocesses:\n  - name: P\n    vmas:\n" + layout
                     + "steps:\n" + step, "x.yaml"), policy).final
    assert [(v.name, v.start, v.end) for v in t.process("P").vmas] == [
        ("A", 0x10000, 0x13000), ("R", 0x1c000, 0x1e000)]
    assert [p.name for p in t.vma("P/A").pages] == ["pg0"]
    assert [p.name for p in t.vma("P/R").pages] == ["pg1", "pg2"]
    note = t.findings[-1]
    assert (note.kind, note.where) == ("NOTE", "P")
    assert note.detail.startswith("enomem: allocation 2 of the step (")
    assert note.detail.endswith(") fails: move_vma() could not split the old range to unmap it "
                                "(\"OOM: unable to split vma\"): it stays mapped, without its "
                                "pages, and mremap() returns the new address"), note.detail


_NEW_RANGE_HEAD = "description: x\nprocesses:\n  - name: P\n    vmas:\n"
_NEW_RANGE = {
    # mmap of b fills the hole: a (never faulted) would take c's anon_vma
    "mmap-between": ("      - {name: a, start: 0x10000, pages: 1}\n"
                     "      - {name: c, start: 0x12000, pages: 1, faulted: true}\nsteps:\n",
                     "  - {mmap: P, name: b, start: 0x11000, pages: 1, prot: rw, enomem: 1}\n",
                     [("a", 0x10000, 0x11000), ("b", 0x11000, 0x12000), ("c", 0x12000, 0x13000)],
                     "anon_vma_clone(a, c)"),
    # the copy of S (a written private file page) would extend Q, which needs S's anon_vma
    "copy-into-prev": ("      - {name: Q, start: 0x2f000, pages: 1, file: lib, offset: 0x4f000}\n"
                       "      - {name: S, start: 0x10000, pages: 1, file: lib, offset: 0x50000, "
                       "faulted: true}\nsteps:\n",
                       "  - {mremap: P/S, flags: [maymove, fixed], to: 0x30000, enomem: 1}\n",
                       [("Q", 0x2f000, 0x30000), ("S", 0x30000, 0x31000)], "anon_vma_clone(Q, S)"),
    # ... would extend N downwards
    "copy-into-next": ("      - {name: S, start: 0x10000, pages: 1, file: lib, offset: 0x50000, "
                       "faulted: true}\n"
                       "      - {name: N, start: 0x31000, pages: 1, file: lib, offset: 0x51000}\n"
                       "steps:\n",
                       "  - {mremap: P/S, flags: [maymove, fixed], to: 0x30000, enomem: 1}\n",
                       [("S", 0x30000, 0x31000), ("N", 0x31000, 0x32000)], "anon_vma_clone(N, S)"),
    # G, moved back between Q and F (its other piece), would join both into Q
    "copy-between": ("      - {name: Q, start: 0x2f000, pages: 1, file: lib, offset: 0x4f000}\n"
                     "      - {name: F, start: 0x10000, pages: 2, file: lib, offset: 0x50000, "
                     "faulted: true}\nsteps:\n"
                     "  - {mremap: P/F, offset: 0, pages: 1, flags: [maymove, fixed], to: 0x70000, "
                     "name: G}\n  - {mremap: P/F, flags: [maymove, fixed], to: 0x31000}\n",
                     "  - {mremap: P/G, flags: [maymove, fixed], to: 0x30000, enomem: 1}\n",
                     [("Q", 0x2f000, 0x30000), ("G", 0x30000, 0x31000), ("F", 0x31000, 0x32000)],
                     "anon_vma_clone(Q, F)"),
}


@pytest.mark.parametrize("policy, case", [("v6.12", "mmap-between")] + [
    (policy, case) for policy in ("split-counters", "clone-rework-2026") for case in sorted(_NEW_RANGE)])
def test_a_new_range_whose_merge_cannot_allocate_is_mapped_alone(policy: str, case: str) -> None:
    """From v6.12 a merge of existing VMAs that cannot allocate fails the call with -ENOMEM
    (vma_modify(): ``if (vmg_nomem(vmg)) return ERR_PTR(-ENOMEM)``), but a merge of a new
    range gives up and the caller maps the range itself: __mmap_region() and copy_vma()
    (mm/vma.c@v6.12.117: ``new_vma = vma_merge_new_range(&vmg); if (!new_vma) { new_vma =
    vm_area_dup(vma); ...``): mmap() and mremap() succeed, the range a VMA of its own.  (Under
    v6.12's merge rule a copy of a written page never merges into a never-faulted neighbour,
    so only the mmap case runs there.)"""
    layout, step, vmas, clone = _NEW_RANGE[case]
    t = run(step, policy, _NEW_RANGE_HEAD + layout)
    assert [(v.name, v.start, v.end) for v in t.process("P").vmas] == vmas
    assert notes(t)[-1] == f"vma_merge(): {clone} failed: no merge (-ENOMEM not reported)"
    assert problems(t) == []
