"""The replay engine: naming of pieces, big address ranges, merges at mmap, refusals, crashes."""
from __future__ import annotations

import pytest

from typing import NamedTuple

from anondiff.engine import default_checks, replay
from anondiff.errors import ReplayError
from anondiff.kernel.fork import ForkContext
from anondiff.kernel.objects import VM_DONTCOPY, AnonVma, Vma
from anondiff.kernel.state import Kernel
from anondiff.policies.split_counters import SplitCountersPolicy
from anondiff.scenario import Exit, Fork, Scenario, Spawn, loads
from anondiff.topology import Topology

HEAD = """description: engine test
processes:
  - name: P
    vmas:
"""


def run(vmas: str, steps: str, policy: str = "split-counters") -> Topology:
    return replay(loads(HEAD + vmas + "steps:\n" + steps, "e.yaml"), policy).final


def names(t: Topology, proc: str = "P") -> list[tuple[str, int, int]]:
    return [(v.name, v.start, v.end) for v in t.process(proc).vmas]


def test_mprotect_middle_names_pieces_lowest_keeps_name() -> None:
    t = run("      - {name: m, start: 0x10000, pages: 4, faulted: true}\n",
            "  - {mprotect: P/m, offset: 1, pages: 2, prot: r, names: [mid]}\n")
    assert names(t) == [("m", 0x10000, 0x11000), ("mid", 0x11000, 0x13000), ("m.1", 0x13000, 0x14000)]
    # one anon_vma, as after any split: the same chain everywhere, counted three times
    assert {v.anon_vma for v in t.process("P").vmas} == {"AV1"}
    assert t.anon_vma("AV1").counter("num_active_vmas") == 3


def test_every_step_that_splits_names_its_pieces() -> None:
    # the engine names pieces only after a step that inserted a VMA: each step, not the first
    t = run("      - {name: a, start: 0x10000, pages: 3, faulted: true}\n"
            "      - {name: b, start: 0x20000, pages: 3, faulted: true}\n",
            "  - {mprotect: P/a, offset: 1, pages: 1, prot: r}\n"
            "  - {munmap: P/b, offset: 1, pages: 1}\n"
            "  - {mprotect: P/a.1, prot: rw}\n"        # merges back: nothing inserted
            "  - {mprotect: P/b, prot: r}\n")          # nor here: one VMA changes
    assert names(t) == [("a", 0x10000, 0x13000), ("b", 0x20000, 0x21000),
                        ("b.1", 0x22000, 0x23000)]


def test_munmap_lower_part_lets_the_survivor_keep_the_name() -> None:
    t = run("      - {name: m, start: 0x10000, pages: 4, faulted: true}\n",
            "  - {munmap: P/m, pages: 1}\n")
    assert names(t) == [("m", 0x11000, 0x14000)]
    assert [p.name for p in t.vma("P/m").pages] == ["pg1", "pg2", "pg3"]


def test_mprotect_back_merges_the_pieces() -> None:
    t = run("      - {name: m, start: 0x10000, pages: 4, faulted: true}\n",
            "  - {mprotect: P/m, offset: 1, pages: 2, prot: r}\n"
            "  - {mprotect: P/m.1, prot: rw}\n")   # the middle piece ("m.1") back to rw
    assert names(t) == [("m", 0x10000, 0x14000)]
    assert t.anon_vma("AV1").counter("num_active_vmas") == 1
    assert any(f.kind == "MERGED" for f in t.findings)


def test_mmap_next_to_a_compatible_vma_merges() -> None:
    t = run("      - {name: a, start: 0x10000, pages: 1, faulted: true}\n",
            "  - {mmap: P, name: b, start: 0x11000, pages: 1}\n")
    assert names(t) == [("a", 0x10000, 0x12000)]


def test_mmap_next_to_a_fork_child_does_not_merge() -> None:
    t = run("      - {name: a, start: 0x10000, pages: 1, faulted: true}\n",
            "  - {fork: P, child: C}\n  - {mmap: C, name: b, start: 0x11000, pages: 1}\n")
    assert names(t, "C") == [("a", 0x10000, 0x11000), ("b", 0x11000, 0x12000)]


def test_huge_vmas_cost_nothing_per_page() -> None:
    pages = 1 << 34                                  # 64 TiB
    t = run(f"      - {{name: big, start: 0x1000, pages: {pages}, faulted: [0, {pages - 1}]}}\n",
            "  - {fork: P, child: C}\n  - {write: C/big, pages: [5]}\n"
            "  - {munmap: C/big, offset: 4, pages: 1000000000}\n  - exit: C\n")
    big = t.vma("P/big")
    assert big.end - big.start == pages << 12
    assert [p.name for p in big.pages] == ["pg0", "pg1"]
    assert not [f for f in t.findings if f.kind.startswith("I")]


@pytest.mark.parametrize("steps,message", [
    ("  - {mprotect: P/zz, prot: r}\n", "no VMA 'zz' in process P"),
    ("  - {mprotect: P, start: 0x10000, pages: 9, prot: r}\n", "ENOMEM"),
    ("  - {fault: P, addr: 0x90000}\n", "SIGSEGV"),
    ("  - {madvise: P/f, advice: wipeonfork}\n", "EINVAL"),
    ("  - {mmap: P, name: x, start: 0x10000, pages: 1}\n", "overlaps P/m"),
    ("  - {fork: P, child: C, names: [a]}\n", "1 names for the 2 VMAs"),
    ("  - {mprotect: P/m, pages: 1, prot: r, names: [a, b]}\n", "2 names given but the step made 1"),
])
def test_refused_steps_name_the_line(steps: str, message: str) -> None:
    with pytest.raises(ReplayError) as e:
        run("      - {name: m, start: 0x10000, pages: 4, faulted: true}\n"
            "      - {name: f, start: 0x20000, pages: 1, file: libc.so}\n", steps)
    assert str(e.value).startswith("e.yaml:8: steps[0]: ")
    assert message in str(e.value)


def test_crash_stops_the_replay_and_keeps_what_came_before() -> None:
    rep = replay(loads(HEAD + "      - {name: A, start: 0x10000, pages: 1, flags: [dontcopy], "
                       "faulted: true, anon_vma: AV0}\n"
                       "      - {name: B, start: 0x11000, pages: 1, faulted: true, anon_vma: AV0}\n"
                       "steps:\n  - {fork: P, child: C}\n  - {exit: P}\n", "e.yaml"),
                 "wei-intended")
    final = rep.final
    assert final.crashed and final.step == 1                 # the exit never ran
    assert [p.name for p in final.processes] == ["P", "C"]
    assert [v.name for v in final.process("C").vmas] == []
    crash = [f for f in final.findings if f.kind == "CRASH"]
    assert len(crash) == 1 and "NULL pointer dereference" in crash[0].detail and crash[0].line == 8


def test_mmap_without_vma_merge_inserts_a_separate_vma() -> None:
    t = run("      - {name: a, start: 0x10000, pages: 1, faulted: true}\n",
            "  - {mmap: P, name: b, start: 0x11000, pages: 1, vma_merge: false}\n")
    assert names(t) == [("a", 0x10000, 0x11000), ("b", 0x11000, 0x12000)]


def test_merge_step_refuses_vmas_that_are_not_adjacent() -> None:
    # the kernel-internal merge only ever extends hi's own predecessor: with b between a and c,
    # `merge lo: a, hi: c` is refused and nothing moves (before: c went into b)
    text = (HEAD.replace("    vmas:\n", "    vmas: []\n") + "steps:\n"
            "  - {mmap: P, name: a, start: 0x10000, pages: 1, prot: rw, vma_merge: false}\n"
            "  - {mmap: P, name: b, start: 0x11000, pages: 1, prot: rw, vma_merge: false}\n"
            "  - {mmap: P, name: c, start: 0x12000, pages: 1, prot: rw, vma_merge: false}\n"
            "  - {merge: P, lo: a, hi: c}\n")
    for policy in ("degree", "split-counters", "clone-rework-2026"):
        t = replay(loads(text, "e.yaml"), policy).final
        assert names(t) == [("a", 0x10000, 0x11000), ("b", 0x11000, 0x12000),
                            ("c", 0x12000, 0x13000)], policy
        kinds = [(f.kind, f.where) for f in t.findings if f.kind.startswith("MERGE")]
        assert kinds == [("MERGE_REFUSED", "P/a")], policy


def test_split_under_a_freed_anon_vma_reports_each_link_by_piece() -> None:
    # a split links the new piece into every anon_vma of the chain (anon_vma_clone) and re-keys
    # the old VMA's chains (pre/post_update_vma): with a freed anon_vma in the chain both write
    # freed memory, and each is reported under the VMA doing it
    from anondiff.kernel.mm import split_vma
    from anondiff.kernel.objects import Mm, Vma
    from anondiff.kernel.rmap import anon_vma_prepare
    from anondiff.kernel.state import Kernel
    from anondiff.policies import get

    for policy in ("degree", "split-counters", "clone-rework-2026"):
        k = Kernel(get(policy))
        mm = k.mms["P"] = Mm("P")
        vma = Vma(mm, 0x10, 0x14, 0x10, frozenset({"read", "write"}), frozenset(), None, "A")
        mm.append(vma)
        anon_vma_prepare(k, vma, None, None)
        assert vma.anon_vma is not None
        vma.anon_vma.freed = True           # as a use-after-free in a broken policy leaves it
        new = split_vma(k, vma, 0x12, new_below=False)
        new.name = "B"                      # the engine names the piece after the step
        uaf = sorted(f"{e.where.mm.name}/{e.where.name}" for e in k.events
                     if e.kind == "UAF" and not isinstance(e.where, str))
        assert uaf == ["P/A", "P/B"], policy


# -- what the step loop does with the scenario's own names, ranges and pages -----------------

TWO = ("      - {name: m, start: 0x10000, pages: 4, faulted: true}\n"
       "      - {name: f, start: 0x20000, pages: 1, file: libc.so}\n")


def refusal(steps: str, vmas: str = TWO) -> str:
    with pytest.raises(ReplayError) as e:
        run(vmas, steps)
    return str(e.value)


@pytest.mark.parametrize("steps,message", [
    # the range of a step inside a VMA, named after the call that refuses it
    ("  - {mprotect: P/m, offset: 2, pages: 3, prot: r}\n",
     "e.yaml:8: steps[0]: mprotect: pages [2, 5) are not inside P/m (4 pages)"),
    ("  - {munmap: P/m, offset: 2, pages: 3}\n",
     "e.yaml:8: steps[0]: munmap: pages [2, 5) are not inside P/m (4 pages)"),
    # an offset at the VMA's end leaves an empty range to the end: refused, not a no-op
    ("  - {mprotect: P/m, offset: 4, prot: r}\n",
     "e.yaml:8: steps[0]: mprotect: pages [4, 4) are not inside P/m (4 pages)"),
    # mprotect(2): ENOMEM when a page of the range is not mapped
    ("  - {mprotect: P, start: 0x10000, end: 0x21000, prot: r}\n",
     "e.yaml:8: steps[0]: mprotect: 0x14000 in the range is not mapped in P: "
     "the kernel returns ENOMEM"),
    ("  - {mprotect: P/zz, prot: r}\n",
     "e.yaml:8: steps[0]: no VMA 'zz' in process P at this point (it has: m, f)"),
    ("  - {spawn: Q}\n  - {mprotect: Q/zz, prot: r}\n",
     "e.yaml:9: steps[1]: no VMA 'zz' in process Q at this point (it has: none)"),
    # names: the pieces a step splits off
    ("  - {mprotect: P/m, pages: 1, prot: r, names: [f]}\n",
     "e.yaml:8: steps[0]: names: P already has a VMA named 'f'"),
    ("  - {mprotect: P/m, prot: r, names: [a]}\n",
     "e.yaml:8: steps[0]: names: 1 names given but the step made 0 new VMAs"),
    # names: the child's VMAs at fork
    ("  - {fork: P, child: C, names: {zz: a}}\n",
     "e.yaml:8: steps[0]: names: P has no VMA 'zz' that fork copies"),
    ("  - {fork: P, child: C, names: {m: f}}\n",
     "e.yaml:8: steps[0]: names: two child VMAs would get the same name"),
    ("  - {fork: P, child: C, names: [a, b, c]}\n",
     "e.yaml:8: steps[0]: names: 3 names for the 2 VMAs fork copies (m, f)"),
    # pages of a write
    ("  - {write: P/m, pages: [1, 4, 9]}\n",
     "e.yaml:8: steps[0]: page offset 4 is outside P/m (4 pages)"),
])
def test_refusals_say_what_and_where(steps: str, message: str) -> None:
    """A step the kernel or the scenario cannot carry out stops the replay with one line: the
    file and line, the step, then what is wrong, word for word."""
    assert refusal(steps) == message


def test_a_missing_vma_lists_the_first_twenty_of_the_process() -> None:
    vmas = "".join(f"      - {{name: v{i}, start: {0x10000 + 0x2000 * i:#x}, pages: 1}}\n"
                   for i in range(21))
    message = refusal("  - {mprotect: P/zz, prot: r}\n", vmas)
    assert message.endswith("no VMA 'zz' in process P at this point (it has: "
                            + ", ".join(f"v{i}" for i in range(20)) + ")")


def test_munmap_of_a_range_with_holes_unmaps_what_is_mapped() -> None:
    """munmap(2): "It is not an error if the indicated range does not contain any mapped
    pages" (do_vmi_munmap() walks the VMAs the range overlaps), unlike mprotect(), which
    returns ENOMEM for an unmapped page in its range."""
    t = run(TWO + "      - {name: n, start: 0x30000, pages: 1, faulted: true}\n",
            "  - {munmap: P, start: 0x11000, end: 0x21000}\n")
    assert names(t) == [("m", 0x10000, 0x11000), ("n", 0x30000, 0x31000)]


def test_pieces_beyond_the_names_given_are_numbered_from_one() -> None:
    t = run(TWO, "  - {mprotect: P/m, offset: 1, pages: 1, prot: r}\n")
    assert names(t) == [("m", 0x10000, 0x11000), ("m.1", 0x11000, 0x12000),
                        ("m.2", 0x12000, 0x14000), ("f", 0x20000, 0x21000)]


def test_write_of_no_page_prepares_the_anon_vma_a_neighbour_lends() -> None:
    """``pages: none`` runs __anon_vma_prepare() alone: find_mergeable_anon_vma() tries the
    next VMA, then the previous one, and reuses its anon_vma when the two are
    anon_vma_compatible() (adjacent, linear, same flags: the protection may differ) and its
    chain is singular (commit d0e9fe1758f2, "Simplify and comment on anon_vma re-use for
    anon_vma_prepare()"); no page is written."""
    t = run("      - {name: a, start: 0x10000, pages: 1, prot: rw, faulted: true}\n"
            "      - {name: b, start: 0x11000, pages: 1, prot: rwx}\n"
            "      - {name: c, start: 0x20000, pages: 1, prot: rwx}\n"
            "      - {name: d, start: 0x21000, pages: 1, prot: rw, faulted: true}\n"
            "      - {name: e, start: 0x30000, pages: 1, prot: rw}\n",
            "  - {write: P/b, pages: none}\n  - {write: P/c, pages: none}\n"
            "  - {write: P/e, pages: none}\n")
    vma = {v.name: v for v in t.process("P").vmas}
    assert vma["b"].anon_vma == vma["a"].anon_vma and vma["b"].chain == vma["a"].chain
    assert vma["c"].anon_vma == vma["d"].anon_vma and vma["c"].chain == vma["d"].chain
    assert vma["a"].anon_vma != vma["d"].anon_vma
    assert vma["e"].anon_vma not in (None, vma["a"].anon_vma, vma["d"].anon_vma)  # its own
    assert [v.pages for v in (vma["b"], vma["c"], vma["e"])] == [(), (), ()]
    assert not t.findings


def test_writing_all_pages_stops_at_the_limit_the_loader_has(monkeypatch: pytest.MonkeyPatch) -> None:
    """``write`` of every page is allowed up to MAX_FAULT_ALL_PAGES pages, the size the loader
    lets ``faulted: true`` fault whole (so a VMA of exactly that size may be written whole);
    above it the offsets must be listed.  (The limit is lowered here: 4 GiB of pages is
    seconds of replay.)"""
    import anondiff.engine
    monkeypatch.setattr(anondiff.engine, "MAX_FAULT_ALL", 4)
    t = run("      - {name: n, start: 0x10000, pages: 4}\n", "  - {write: P/n}\n")
    assert [(p.name, p.addr) for p in t.vma("P/n").pages] == [
        ("pg0", 0x10000), ("pg1", 0x11000), ("pg2", 0x12000), ("pg3", 0x13000)]
    assert refusal("  - {write: P/n}\n",
                   "      - {name: n, start: 0x10000, pages: 5}\n") == (
        "e.yaml:7: steps[0]: faulting all 5 pages of P/n is not supported; "
        "list the page offsets to fault")


def test_spawn_makes_an_empty_process_the_steps_can_use() -> None:
    t = run(TWO, "  - {spawn: Q}\n  - {mmap: Q, name: q, start: 0x10000, pages: 1}\n"
                 "  - {write: Q/q}\n")
    assert [p.name for p in t.processes] == ["P", "Q"]
    assert names(t, "Q") == [("q", 0x10000, 0x11000)]
    assert [p.addr for p in t.vma("Q/q").pages] == [0x10000]


class _NotAStep(NamedTuple):
    line: int = 8


def handmade(*steps: object) -> Scenario:
    """A Scenario built by hand (the records of anondiff.scenario are public): the engine checks
    what the loader would have refused."""
    return loads(HEAD + TWO + "steps: []\n", "e.yaml")._replace(steps=steps)


@pytest.mark.parametrize("step,message", [
    (Spawn("P", line=8), "process 'P' already exists"),
    (Fork("P", "P", line=8), "process 'P' already exists"),
    (Exit("Q", line=8), "no process 'Q' at this point"),
    (_NotAStep(), "unknown step _NotAStep(line=8)"),
])
def test_hand_made_steps_the_loader_would_refuse(step: object, message: str) -> None:
    with pytest.raises(ReplayError) as e:
        replay(handmade(step), "split-counters")
    assert str(e.value) == "e.yaml:8: steps[0]: " + message


class _MiscountedLayout(SplitCountersPolicy):
    """split-counters, but a starting layout's anon_vma counts its VMA twice."""

    name = "miscounted-layout"

    def attach_anon_vma(self, k: Kernel, vma: Vma, av: AnonVma) -> None:
        super().attach_anon_vma(k, vma, av)
        av.num_active_vmas += 1


def test_a_finding_of_the_starting_layout_is_at_step_0_line_0() -> None:
    """topology.Finding: step 0 and line 0 are the starting layout (the listing says "starting
    layout", JSON gives the numbers); spec I4b, num_active_vmas = the VMAs using it (commit
    2555283eb40d)."""
    t = replay(loads(HEAD + "      - {name: m, start: 0x10000, pages: 4, faulted: true}\n"
                     "steps:\n  - {write: P/m, pages: [0]}\n", "e.yaml"),
               _MiscountedLayout()).final
    assert [tuple(f) for f in t.findings] == [
        ("I4", "AV1", "num_children 1, num_active_vmas 2; recount gives num_children 1, "
         "num_active_vmas 1", 0, 0, True)]
    assert t.step == 1


class _BehindTheBack(SplitCountersPolicy):
    """split-counters, but a fork also counts one more active VMA in the anon_vma of each of the
    parent's DONTCOPY VMAs: a change no primitive of the model notes."""

    name = "behind-the-back"

    def anon_vma_fork(self, k: Kernel, vma: Vma, pvma: Vma, ctx: ForkContext) -> None:
        super().anon_vma_fork(k, vma, pvma, ctx)
        for v in pvma.mm.vmas:
            if VM_DONTCOPY in v.flags and v.anon_vma is not None:
                v.anon_vma.num_active_vmas += 1


BEHIND = loads(HEAD + "      - {name: a, start: 0x10000, pages: 1, faulted: true}\n"
               "      - {name: b, start: 0x20000, pages: 1, flags: [dontcopy], faulted: true}\n"
               "steps:\n  - {fork: P, child: C}\n", "e.yaml")
#: what the full recount finds after the fork: b's anon_vma miscounted (spec I4b)
RECOUNTED = [("I4", "AV2", "num_children 1, num_active_vmas 2; recount gives num_children 1, "
              "num_active_vmas 1", 1, 8, True)]


def test_full_checks_recount_everything_after_every_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """``checks="full"`` (or ``ANONDIFF_FULL_CHECKS`` set to anything but "" and "0", the
    debug switch) recounts every invariant after every step, so it also finds what a policy
    changed behind the model's back; the default is the incremental checks, and an unknown
    mode is refused."""
    monkeypatch.delenv("ANONDIFF_FULL_CHECKS", raising=False)
    assert default_checks() == "incremental"
    assert [tuple(f) for f in replay(BEHIND, _BehindTheBack(), checks="full").final.findings] \
        == RECOUNTED
    for value in ("", "0"):
        monkeypatch.setenv("ANONDIFF_FULL_CHECKS", value)
        assert default_checks() == "incremental"
    for value in ("1", "yes"):
        monkeypatch.setenv("ANONDIFF_FULL_CHECKS", value)
        assert default_checks() == "full"
        assert [tuple(f) for f in replay(BEHIND, _BehindTheBack()).final.findings] == RECOUNTED
    with pytest.raises(ValueError) as e:
        replay(BEHIND, "split-counters", checks="sometimes")
    assert str(e.value) == "unknown checks: 'sometimes' (must be one of ['incremental', 'full'])"


def test_a_kernel_event_on_a_vma_names_it_and_is_never_active() -> None:
    """Under Konstantin Khlebnikov's v1 patch (6 Jan 2020, Message-ID
    <157830736034.8148.7070851958306750616.stgit@buzz>, never merged) the child's a.1 shares a new
    anon_vma its chain, copied from the parent's, does not hold (I2); unmapping a frees it
    under a.1, and the first write to m reuses it (find_mergeable_anon_vma(): a.1's chain is
    singular): anon_vma_interval_tree_insert() into freed memory, a kernel event reported on
    the VMA as PROCESS/VMA, with active False (topology.Finding: kernel events are)."""
    sc = loads(HEAD + "      - {name: a, start: 0x16000, pages: 4, prot: rw, faulted: [0, 1, 3]}\n"
               "steps:\n"
               "  - {mprotect: P, start: 0x18000, end: 0x1a000, prot: rx}\n"
               "  - {mmap: P, name: m, start: 0x1a000, pages: 4, prot: rw}\n"
               "  - {fork: P, child: C}\n  - {munmap: C/a}\n  - {write: C, addr: 0x1b000}\n",
               "e.yaml")
    events = [f for f in replay(sc, "v1").final.findings if not f.kind.startswith("I")]
    assert [tuple(f) for f in events] == [
        ("VM_WARN_ON", "AV2", "anon_vma->degree (1)", 4, 10, False),
        ("UAF", "C/m", "anon_vma_interval_tree_insert into freed AV2", 5, 11, False)]
    assert all(f.active is False for f in events)             # False itself, not falsy
    assert replay(sc, "split-counters").final.findings == ()


def _subclassed(step: object) -> object:
    """The same step as an instance of a subclass of its class (a caller's own record type)."""
    cls = type(step)
    sub = type("My" + cls.__name__, (cls,), {"__slots__": ()})
    return sub(*step)  # type: ignore[misc]


@pytest.mark.parametrize("name", ["seed-thread", "enomem-fork", "mremap-fork-child",
                                  "file-between-sharers"])
def test_steps_of_a_subclass_of_a_step_class_replay_as_the_step(name: str) -> None:
    # do() finds a step's kind by its class first; a subclass is found by isinstance()
    from pathlib import Path

    from anondiff.scenario import load
    sc = load(str(Path(__file__).parent.parent / "scenarios" / f"{name}.yaml"))
    sub = sc._replace(steps=tuple(_subclassed(s) for s in sc.steps))
    assert {type(s).__name__[:2] for s in sub.steps} == {"My"}
    for policy in ("split-counters", "degree"):
        assert replay(sub, policy) == replay(sc, policy)
