"""brk() and the stack growing down (anondiff/kernel/expand.py)."""
from __future__ import annotations

import pytest

from anondiff.engine import replay
from anondiff.errors import ReplayError, ScenarioError
from anondiff.scenario import Brk, loads
from anondiff.topology import Topology

EVERY = ("always-new", "degree", "v5.10", "v2", "split-counters", "v6.1", "clone-rework-2026",
         "mirror-parent")
INFORMATIONAL = {"NOTE", "MERGED", "MERGE_REFUSED"}


def run(vmas: str, steps: str, policy: str) -> Topology:
    return replay(loads("description: x\nprocesses:\n  - name: P\n    vmas:\n" + vmas
                        + "steps:\n" + steps, "x.yaml"), policy).final


def layout(t: Topology, proc: str = "P") -> list[tuple[str, int, int, int]]:
    return [(v.name, v.start, v.end, v.pgoff) for v in t.process(proc).vmas]


def problems(t: Topology) -> list[str]:
    return [f"{f.kind} {f.where}" for f in t.findings if f.kind not in INFORMATIONAL]


# -- brk ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("policy", EVERY)
def test_vma_c_expand_only_mode(policy: str) -> None:
    """tools/testing/vma/vma.c test_expand_only_mode (6.12): VMAs [0, 0x2000) and
    [0x3000, 0x5000); expanding [0x5000, 0x9000) with VMG_FLAG_JUST_EXPAND grows the second
    to [0x3000, 0x9000), pgoff unchanged, and leaves the first alone.  do_brk_flags() is that
    caller: here the break moves from 0x5000 to 0x9000 (shifted up by 0x100000)."""
    b = 0x100000
    vmas = (f"      - {{name: first, start: {b:#x}, pages: 2}}\n"
            f"      - {{name: heap, start: {b + 0x3000:#x}, pages: 2}}\n")
    t = run(vmas, f"  - {{brk: P, from: {b + 0x5000:#x}, to: {b + 0x9000:#x}}}\n", policy)
    assert layout(t) == [("first", b, b + 0x2000, b >> 12),
                         ("heap", b + 0x3000, b + 0x9000, (b + 0x3000) >> 12)]


@pytest.mark.parametrize("policy", EVERY)
def test_brk_grows_a_written_heap_but_not_a_fork_childs(policy: str) -> None:
    """"Singular lists do not occur after forking, so the expand will only happen on new VMAs"
    (do_brk_flags()): the parent's written heap grows; the child's, a fork child, does not and
    the break gets a new VMA, in every era."""
    vmas = "      - {name: heap, start: 0x10000, pages: 2, faulted: true}\n"
    steps = ("  - {fork: P, child: C}\n  - {brk: P, from: 0x12000, to: 0x14000}\n"
             "  - {brk: C, from: 0x12000, to: 0x14000}\n")
    t = run(vmas, steps, policy)
    assert layout(t, "P") == [("heap", 0x10000, 0x14000, 0x10)]
    assert layout(t, "C") == [("heap", 0x10000, 0x12000, 0x10), ("heap.1", 0x12000, 0x14000, 0x12)]
    assert t.vma("C/heap.1").anon_vma is None
    assert problems(t) == []


@pytest.mark.parametrize("policy", EVERY)
def test_brk_makes_a_new_vma_next_to_an_incompatible_one(policy: str) -> None:
    """The heap VMA must carry the brk flags (read-write, VM_ACCOUNT): a read-only one is not
    expanded; ``name`` names the new VMA."""
    vmas = "      - {name: data, start: 0x10000, pages: 2, prot: r}\n"
    t = run(vmas, "  - {brk: P, from: 0x12000, to: 0x13000, name: H}\n", policy)
    assert layout(t) == [("data", 0x10000, 0x12000, 0x10), ("H", 0x12000, 0x13000, 0x12)]
    assert t.vma("P/H").flags == ("account",) and t.vma("P/H").prot == ("read", "write")


@pytest.mark.parametrize("policy", EVERY)
def test_brk_shrinks_by_unmapping(policy: str) -> None:
    vmas = "      - {name: heap, start: 0x10000, pages: 4, faulted: true}\n"
    t = run(vmas, "  - {brk: P, from: 0x14000, to: 0x11000}\n", policy)
    assert layout(t) == [("heap", 0x10000, 0x11000, 0x10)]
    assert [p.name for p in t.vma("P/heap").pages] == ["pg0"]


@pytest.mark.parametrize("policy", EVERY)
def test_brk_shrinking_through_a_vma_names_its_pieces(policy: str) -> None:
    """A lower break unmaps [new, old) whatever is mapped there (do_vmi_align_munmap() from
    brk()): a VMA cut in two keeps its name on the lower piece and the upper one is NAME.1, as
    after munmap (two VMAs named alike made every later step naming them ambiguous; found by
    tests/test_stateful.py)."""
    vmas = "      - {name: v1, start: 0x17000, pages: 6, faulted: true}\n"
    t = run(vmas, "  - {brk: P, from: 0x1a000, to: 0x18000}\n", policy)
    assert layout(t) == [("v1", 0x17000, 0x18000, 0x17), ("v1.1", 0x1a000, 0x1d000, 0x1a)]
    assert t.vma("P/v1").anon_vma == t.vma("P/v1.1").anon_vma is not None


def test_brk_keeps_a_page_before_the_next_vma() -> None:
    vmas = ("      - {name: heap, start: 0x10000, pages: 1}\n"
            "      - {name: lib, start: 0x13000, pages: 1, file: lib}\n")
    run(vmas, "  - {brk: P, from: 0x11000, to: 0x12000}\n", "split-counters")
    with pytest.raises(ReplayError, match="brk: the new break leaves no page before lib"):
        run(vmas, "  - {brk: P, from: 0x11000, to: 0x13000}\n", "split-counters")


@pytest.mark.parametrize("policy", EVERY)
@pytest.mark.parametrize("old", [0x10000, 0x12000])
def test_brk_refuses_an_old_break_inside_or_at_the_start_of_a_vma(policy: str, old: int) -> None:
    """sys_brk() (mm/mmap.c of 6.18 and 7.2) finds the next VMA with vma_find(&vmi,
    newbrk + PAGE_SIZE + stack_guard_gap) from oldbrk: a VMA that contains the old break or
    starts at it is found too, and newbrk + PAGE_SIZE > its vm_start refuses the growth (brk()
    returns the old break).  The model looked only past VMAs starting above the old break and
    mapped a heap over A (found by anondiff live on 6.18)."""
    vmas = "      - {name: A, start: 0x10000, pages: 4, prot: rw}\n"
    with pytest.raises(ReplayError, match="brk: the new break leaves no page before A"):
        run(vmas, f"  - {{brk: P, from: {old:#x}, to: 0x16000}}\n", policy)


def test_brk_step_loads_and_refuses_bad_input() -> None:
    head = "description: x\nprocesses:\n  - {name: P, vmas: []}\nsteps:\n"
    sc = loads(head + "  - {brk: P, from: 0x10000, to: 0x12000, name: H}\n", "b.yaml")
    assert sc.steps == (Brk("P", 0x10000, 0x12000, "H", line=5),)
    for step, message in (("{brk: P, from: 0x10000}", "missing required key 'to'"),
                          ("{brk: P, from: 0x10001, to: 0x12000}", "not page aligned"),
                          ("{brk: P, from: 0x10000, to: 0x12000, pages: 1}", "unknown key 'pages'"),
                          ("{brk: Q, from: 0x10000, to: 0x12000}", "'Q' is not a process")):
        with pytest.raises(ScenarioError) as e:
            loads(head + "  - " + step + "\n", "b.yaml")
        assert str(e.value).startswith("b.yaml:5:") and message in str(e.value), str(e.value)


# -- the stack ----------------------------------------------------------------------------------

STACK = "      - {name: stack, start: 0x7ff000000, pages: 2, flags: [growsdown]}\n"


@pytest.mark.parametrize("policy", EVERY)
def test_fault_below_a_stack_grows_it(policy: str) -> None:
    """expand_downwards(): anon_vma_prepare(), then vm_start and vm_pgoff move down to the
    faulting page; the page written there has the index linear with the new pgoff."""
    t = run(STACK, "  - {write: P, addr: 0x7feffd010}\n", policy)
    s = t.vma("P/stack")
    assert (s.start, s.end, s.pgoff) == (0x7feffd000, 0x7ff002000, 0x7feffd)
    assert s.anon_vma is not None and s.chain == (s.anon_vma,)
    assert [(p.addr, p.index) for p in s.pages] == [(0x7feffd000, 0x7feffd)]
    assert problems(t) == []


@pytest.mark.parametrize("policy", EVERY)
def test_a_fork_childs_stack_grows_with_its_own_anon_vma(policy: str) -> None:
    """The child's stack already has an anon_vma from the fork: prepare does nothing, the
    stack grows and the interval trees follow (no finding)."""
    vmas = STACK.replace("flags: [growsdown]", "flags: [growsdown], faulted: true")
    t = run(vmas, "  - {fork: P, child: C}\n  - {write: C, addr: 0x7fefff000}\n", policy)
    s, p = t.vma("C/stack"), t.vma("P/stack")
    assert (s.start, p.start) == (0x7fefff000, 0x7ff000000)
    assert len(s.pages) == 3 and all(pg.in_chain for pg in s.pages)
    assert problems(t) == []


def test_stack_guard_gap() -> None:
    """A stack does not grow within stack_guard_gap (256 pages) of an accessible VMA below."""
    below = "      - {name: lib, start: 0x7fef00000, pages: 1, file: lib}\n"
    with pytest.raises(ReplayError, match="stack guard gap"):
        run(below + STACK, "  - {write: P, addr: 0x7feff0000}\n", "split-counters")
    t = run(below.replace("0x7fef00000", "0x7fee00000") + STACK,
            "  - {write: P, addr: 0x7feff0000}\n", "split-counters")
    assert t.vma("P/stack").start == 0x7feff0000


def test_growsdown_does_not_merge_with_plain_vmas() -> None:
    """VM_GROWSDOWN is a vm_flag like any other: a plain neighbour does not merge with it."""
    t = run("      - {name: a, start: 0x10000, pages: 1}\n",
            "  - {mmap: P, name: s, start: 0x11000, pages: 1, flags: [growsdown]}\n",
            "split-counters")
    assert [v.name for v in t.process("P").vmas] == ["a", "s"]


# -- MAP_NORESERVE --------------------------------------------------------------------------

@pytest.mark.parametrize("policy", EVERY)
def test_merge_c_mprotect_unfaulted_left_with_noreserve(policy: str) -> None:
    """tools/testing/selftests/mm/merge.c mprotect_unfaulted_left: 10 pages mapped read-write
    with MAP_NORESERVE ("so we don't hit merge failure due to lack of VM_ACCOUNT flag by
    mistake"), the first 5 made read-only, page 5 written, the last 5 made read-only: one VMA
    under the 2025 rule (the faulted range merges into the unfaulted prev); before it, two (an
    unfaulted target's empty chain is not singular).  No VMA ever carries VM_ACCOUNT."""
    steps = ("  - {mmap: P, name: ptr, start: 0x101000, pages: 10, flags: [noreserve]}\n"
             "  - {mprotect: P/ptr, pages: 5, prot: r}\n"
             "  - {write: P, addr: 0x106000}\n"
             "  - {mprotect: P, start: 0x106000, pages: 5, prot: r}\n")
    t = replay(loads("description: x\nprocesses:\n  - {name: P, vmas: []}\nsteps:\n" + steps,
                     "x.yaml"), policy).final
    spans = [(v.start, v.end) for v in t.process("P").vmas]
    if policy in ("split-counters", "clone-rework-2026", "mirror-parent"):
        assert spans == [(0x101000, 0x10b000)]
    else:
        assert spans == [(0x101000, 0x106000), (0x106000, 0x10b000)]
    assert all("account" not in v.flags for v in t.process("P").vmas)


def test_noreserve_never_becomes_accountable() -> None:
    """mprotect_fixup() adds VM_ACCOUNT only when the old flags have none of VM_ACCOUNT,
    VM_WRITE, VM_SHARED and VM_NORESERVE; accountable_mapping() likewise at mmap."""
    vmas = ("      - {name: a, start: 0x10000, pages: 1, prot: r, flags: [noreserve]}\n"
            "      - {name: b, start: 0x20000, pages: 1, prot: r}\n"
            "      - {name: c, start: 0x30000, pages: 1, prot: rw, flags: [noreserve], faulted: true}\n")
    t = run(vmas, "  - {mprotect: P/a, prot: rw}\n  - {mprotect: P/b, prot: rw}\n",
            "split-counters")
    assert [v.flags for v in t.process("P").vmas] == [("noreserve",), ("account",), ("noreserve",)]


# -- VM_SPECIAL -----------------------------------------------------------------------------

@pytest.mark.parametrize("flag", ["io", "dontexpand"])
@pytest.mark.parametrize("policy", EVERY)
def test_special_vmas_never_merge(policy: str, flag: str) -> None:
    """vma_merge() returns at once for VM_SPECIAL flags: not at mmap, not at mprotect, not at
    mremap, even with an identical neighbour (tools/testing/vma/vma.c
    test_vma_merge_special_flags, through syscalls)."""
    vmas = (f"      - {{name: a, start: 0x10000, pages: 1, flags: [{flag}]}}\n"
            f"      - {{name: b, start: 0x11000, pages: 1, prot: r, flags: [{flag}]}}\n"
            f"      - {{name: c, start: 0x20000, pages: 1, flags: [{flag}]}}\n")
    steps = (f"  - {{mmap: P, name: d, start: 0x12000, pages: 1, prot: r, flags: [{flag}]}}\n"
             "  - {mprotect: P/b, prot: rw}\n"
             "  - {mremap: P/c, flags: [maymove, fixed], to: 0x13000}\n")
    t = run(vmas, steps, policy)
    assert [v.name for v in t.process("P").vmas] == ["a", "b", "d", "c"]


def test_dontexpand_cannot_grow_or_dontunmap() -> None:
    vmas = "      - {name: a, start: 0x10000, pages: 1, flags: [dontexpand]}\n"
    with pytest.raises(ReplayError, match="EFAULT"):
        run(vmas, "  - {mremap: P/a, new_pages: 2}\n", "split-counters")
    with pytest.raises(ReplayError, match="EINVAL"):
        run(vmas, "  - {mremap: P/a, flags: [maymove, fixed, dontunmap], to: 0x20000}\n",
            "split-counters")
    # VM_IO may grow, but vma_merge() refuses to extend a VM_SPECIAL VMA: do_mremap() fails
    # with ENOMEM rather than moving it (v6.1 and the 2026 expand_vma_in_place() alike)
    with pytest.raises(ReplayError, match="ENOMEM"):
        run(vmas.replace("dontexpand", "io"), "  - {mremap: P/a, new_pages: 2, flags: [maymove], "
            "to: 0x20000}\n", "split-counters")
