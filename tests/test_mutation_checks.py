"""The full recount of the invariants (spec section 9) and the batch replays a search uses, for
``make mutation`` (issue 12): the incremental checks are the default, so the recount
(:func:`anondiff.kernel.checks.check`, ``ANONDIFF_FULL_CHECKS=1``) and
:func:`~anondiff.engine.findings_many` / :func:`~anondiff.engine.replay_many` are reached by
no fast test otherwise (tests/test_incremental_checks.py holds them to each other after every
step, in minutes).  Here each shipped scenario is replayed once per policy both ways: a change
to either way of finding an I1..I7 violation changes a finding a user reads.

The incremental checks' own shortcuts (what a step marks, which I3 groups and counters are looked
at again, the order new findings come out in) are pinned below on small replays changed by hand
as a buggy policy would change them, each against the full recount; the survivors no result can
tell apart are explained in tests/mutation-equivalent-mchecks.txt."""
from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Callable

import pytest

from anondiff.engine import _Replayer, findings_many, replay, replay_many
from anondiff.errors import ReplayError
from anondiff.kernel import checks
from anondiff.kernel.counters import DegreeCounters
from anondiff.kernel.objects import AnonVma, AnonVmaChain, Mm, Vma
from anondiff.kernel.rmap import anon_vma_chain_link, avname
from anondiff.kernel.state import Kernel
from anondiff.policies import get, names
from anondiff.policies.base import Policy
from anondiff.policies.degree import Degree
from anondiff.policies.eras import ERA_VARIANTS
from anondiff.policies.split_counters import SplitCountersPolicy
from anondiff.scenario import Scenario, load, loads
from anondiff.search.budget import Budget
from anondiff.search.generate import generate
from anondiff.topology import Replay
from .eras import accepts

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = sorted(p.relative_to(ROOT) for p in (ROOT / "scenarios").rglob("*.yaml"))
POLICIES = names() + [c.name for c in ERA_VARIANTS]


@pytest.mark.parametrize("path", SCENARIOS, ids=[str(p) for p in SCENARIOS])
def test_full_recount_finds_what_the_incremental_checks_find(
        path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every invariant, recounted from scratch after each step, gives the findings the
    incremental checks give, in the same order, under every policy and era."""
    monkeypatch.chdir(ROOT)
    sc = load(str(path))
    for policy in POLICIES:
        if not accepts(sc, policy):
            continue
        assert replay(sc, policy, checks="full") == replay(sc, policy, checks="incremental"), \
            policy


def test_the_scenarios_find_every_kind_of_violation(monkeypatch: pytest.MonkeyPatch) -> None:
    """The shipped scenarios show I1, I2, I3, I6, I6-UAF and I7-UAF broken under some policy
    (the bugs they were written for: commit 2555283eb40d's double reuse, CVE-2022-42703's
    use-after-free ...), so the comparison above exercises those checks with something to
    find, under the full recount as well (I4 and I5 break in no shipped scenario: pinned
    below on hand-broken counters)."""
    monkeypatch.chdir(ROOT)
    kinds: Counter[str] = Counter()
    for path in SCENARIOS:
        sc = load(str(path))
        for policy in POLICIES:
            if not accepts(sc, policy):
                continue
            kinds.update(f.kind for f in replay(sc, policy, checks="full",
                                                snapshots=False).final.findings)
    for kind in ("I1", "I2", "I3", "I6", "I6-UAF", "I7-UAF"):
        assert kinds[kind], (kind, kinds)


def test_findings_many_and_replay_many_match_replay(monkeypatch: pytest.MonkeyPatch) -> None:
    """A search replays many scenarios under several policies with findings_many() (no
    snapshot frozen) and shows a hit with replay(): both must say the same thing, scenario by
    scenario, the policies in order, with either way of checking; replay_many() gives exactly
    what replay() gives."""
    monkeypatch.chdir(ROOT)
    # (the scenarios every policy accepts: replay_many() stops at the first refusal)
    scenarios = [sc for sc in (load(str(p)) for p in SCENARIOS)
                 if all(accepts(sc, policy) for policy in POLICIES)]
    replays = list(replay_many(iter(scenarios), POLICIES))
    assert len(replays) == len(scenarios) * len(POLICIES)
    want = iter(replays)
    for sc in scenarios:
        for policy in POLICIES:
            assert next(want) == replay(sc, policy)
    for checks_ in ("incremental", "full"):
        outcomes = list(findings_many(iter(scenarios), POLICIES, checks=checks_))
        assert [(o.scenario.name, o.policy, o.findings, o.crashed) for o in outcomes] == [
            (r.scenario, r.policy, r.final.findings, r.final.crashed) for r in replays]
    assert any(o.crashed for o in outcomes) and any(o.findings for o in outcomes)


# I4 and I5 hold in every shipped scenario (a broken counter is a bug of the model or of a
# user's policy), so the counters' checks are pinned on a replayed kernel whose counters are
# then set wrong by hand: P's faulted VMA, forked to C (which writes it) and C forked to G.
FORK_TWICE = """
description: a parent, its child and its grandchild, one faulted VMA
processes:
  - name: P
    vmas:
      - {name: a, start: 0x100000, pages: 2, prot: rw, faulted: [0, 1]}
steps:
  - {fork: P, child: C}
  - {write: C/a, pages: [0]}
  - {fork: C, child: G}
"""


def _replayed(text: str, policy: str | Policy) -> _Replayer:
    """``text`` replayed under ``policy`` with the incremental checks, kept for more steps."""
    r = _Replayer(loads(text, "checks.yaml"), get(policy) if isinstance(policy, str) else policy,
                  "incremental", False)
    r.steps()
    return r


def _forked_twice(policy: str | Policy) -> _Replayer:
    r = _replayed(FORK_TWICE, policy)
    assert checks.check(r.k) == [] and r.checker is not None and r.checker.current() == set()
    return r


def _av(r: _Replayer, name: str) -> AnonVma:
    return next(av for av in r.k.live if avname(av) == name)


def _both(r: _Replayer, *changed: AnonVma) -> tuple[list, list]:
    """(the full recount's violations, what the incremental checks newly report once told
    that ``changed`` anon_vmas changed): the two must agree."""
    r.k.dirty_avs.update(changed)
    new, _gone = r.checker.update()
    return checks.check(r.k), new


@pytest.mark.parametrize("policy, av, field, value, expected", [
    # degree = VMAs using it + live children + its self link (commit 7a3ef208e662): AV1 has
    # P/a, child AV2 and the self link; AV2 has C/a and child AV3; AV3 has G/a
    ("degree", "AV1", "degree", 2, "degree 2; recount gives degree 3"),
    ("degree", "AV2", "degree", 5, "degree 5; recount gives degree 2"),
    ("degree", "AV3", "degree", 0, "degree 0; recount gives degree 1"),
    # the self link counts once, added (3 = 1 + 1 + 1, not 1 + 1 - 1 nor 1 - 1 + 1)
    ("degree", "AV1", "degree", 1, "degree 1; recount gives degree 3"),
    # commit 2555283eb40d split it: num_children (live children + self link), num_active_vmas
    ("split-counters", "AV1", "num_children", 1,
     "num_children 1, num_active_vmas 1; recount gives num_children 2, num_active_vmas 1"),
    ("split-counters", "AV2", "num_active_vmas", 2,
     "num_children 1, num_active_vmas 2; recount gives num_children 1, num_active_vmas 1"),
    ("split-counters", "AV3", "num_children", 1,
     "num_children 1, num_active_vmas 1; recount gives num_children 0, num_active_vmas 1"),
    # the root's self link is one more child (2 = 1 + 1, not 1 - 1)
    ("split-counters", "AV1", "num_children", 0,
     "num_children 0, num_active_vmas 1; recount gives num_children 2, num_active_vmas 1"),
])
def test_a_wrong_counter_is_an_i4_finding(policy: str, av: str, field: str, value: int,
                                          expected: str) -> None:
    """Spec I4: each era's counters equal a recount of what they count (anon_vma_clone() /
    anon_vma_fork() / unlink_anon_vmas() bump them at the kernel's points); a counter off by
    any amount is reported once, naming the anon_vma, what it holds and what the recount
    gives, by the full recount and by the incremental checks alike."""
    r = _forked_twice(policy)
    target = _av(r, av)
    setattr(target, field, value)
    full, new = _both(r, target)
    assert full == new == [("I4", av, expected)]
    r.k.dirty_avs.add(target)                   # looked at again, still wrong: nothing new
    assert r.checker.update() == ([], [])


@pytest.mark.parametrize("policy", ["always-new", "degree", "split-counters"])
def test_a_wrong_refcount_is_an_i5_finding(policy: str) -> None:
    """Spec I5: anon_vma->refcount is one for the anon_vma's own linked tree plus one per live
    anon_vma whose root it is (anon_vma_fork() takes get_anon_vma(anon_vma->root), commit
    76545066c8521 ("mm: extend KSM refcounts to the anon_vma root")): the root AV1 has C's and
    G's, so 3; AV3 holds only its own.  Several wrong counters at once come out in anon_vma
    order, and putting them right makes the findings inactive."""
    r = _forked_twice(policy)
    root, leaf = _av(r, "AV1"), _av(r, "AV3")
    root.refcount, leaf.refcount = 2, 4
    full, new = _both(r, leaf, root)
    assert full == new == [("I5", "AV1", "refcount 2; expected 3"),
                           ("I5", "AV3", "refcount 4; expected 1")]
    root.refcount, leaf.refcount = 3, 1
    r.k.dirty_avs.update((root, leaf))
    new, gone = r.checker.update()
    assert new == [] and sorted(gone) == full and checks.check(r.k) == []


@pytest.mark.parametrize("policy", ["degree", "split-counters"])
def test_a_violation_reported_twice_by_one_vma_keeps_its_first_place(policy: str) -> None:
    """A chain that links the same freed anon_vma twice (a policy's bug: anon_vma_clone()
    run twice over one source) reports "chain links freed AV1" at both places; the full
    recount's findings take each violation at its first report, so AV1's comes before AV2's,
    and the incremental checks must order them the same (by the first report's place, not
    the last)."""
    r = _forked_twice(policy)
    av1, av2 = _av(r, "AV1"), _av(r, "AV2")
    g = r.k.mms["G"].by_name("a")
    assert g is not None and [avname(avc.anon_vma) for avc in g.same_vma()] == ["AV3", "AV2", "AV1"]
    g.avcs.append(AnonVmaChain(g, av1, 0))          # head first: AV1, AV3, AV2, AV1
    av1.freed = av2.freed = True
    r.k.dirty_vmas.update(v for mm in r.k.mms.values() for v in mm.vmas)
    r.k.freed_any = True
    full, new = _both(r, av1, av2)
    assert list(dict.fromkeys(full)) == new
    assert [v for v in new if v[:2] == ("I7-UAF", "G/a")] == [
        ("I7-UAF", "G/a", "chain links freed AV1"), ("I7-UAF", "G/a", "chain links freed AV2")]
    # the second link goes: G/a reports AV1 once, and the finding still holds (both reports
    # are taken back, one is made again: nothing new, nothing gone)
    g.avcs.pop()
    r.k.dirty_vmas.add(g)
    assert r.checker.update() == ([], [])
    assert r.checker.current() == set(checks.check(r.k))
    assert ("I7-UAF", "G/a", "chain links freed AV1") in r.checker.current()


def test_a_part_moved_with_dontunmap_takes_its_rmap_misses_along() -> None:
    """CVE-2022-42703's merge under v5.10 (degree counters, before commit 2555283eb40d) leaves
    Y/lo mapping two pages of AV5, which its chain lacks (I6).  MREMAP_DONTUNMAP of those two
    pages (v5.7+, commit e346b3813067) moves their ptes to a copy of the VMA and leaves Y/lo
    whole, only emptier: its I6 findings stop holding and the copy, which cloned the same
    chain, has them.  The incremental checks see that only from the page range the ptes left
    (no VMA around it changed), so they must re-check it, as the full recount does."""
    text = (ROOT / "scenarios" / "cve-2022-42703.yaml").read_text()
    head = text.partition("  - snapshot: merged")[0]
    sc = loads(head + "  - {mremap: Y/lo, offset: 2, pages: 2, flags: [maymove, dontunmap], "
                      "to: 0x7f0000100000}\n", "cve-dontunmap.yaml")
    full = replay(sc, "v5.10", checks="full")
    assert replay(sc, "v5.10", checks="incremental") == full
    assert [(f.where, f.detail, f.step, f.active) for f in full.final.findings
            if f.kind == "I6"] == [
        ("Y/lo", "pg4 mapping AV5 not in chain (rmap miss)", 13, False),
        ("Y/lo", "pg5 mapping AV5 not in chain (rmap miss)", 13, False),
        ("Y/lo.1", "pg4 mapping AV5 not in chain (rmap miss)", 14, True),
        ("Y/lo.1", "pg5 mapping AV5 not in chain (rmap miss)", 14, True)]


FORK_ONCE = """
description: a parent and its child, one faulted VMA
processes:
  - name: P
    vmas:
      - {name: a, start: 0x100000, pages: 2, prot: rw, faulted: [0, 1]}
steps:
  - {fork: P, child: C}
"""


@pytest.mark.parametrize("policy", ["degree", "split-counters"])
def test_a_root_refcount_put_once_per_descendant_too_many_is_found(policy: str) -> None:
    """I5 counts the root's own linked tree plus one per live descendant: AV1 with its child
    AV2 holds 2.  A refcount of 0 (every reference put) is reported, although it is what the
    tree's reference minus the descendants' would give."""
    r = _replayed(FORK_ONCE, policy)
    root = _av(r, "AV1")
    root.refcount = 0
    full, new = _both(r, root)
    assert full == new == [("I5", "AV1", "refcount 0; expected 2")]


#: P's VMA forked to C, C's to G; C exits, G forks H (whose VMA reuses AV2, degree 1 < 2:
#: commit 7a3ef208e662) and exits: G's AV3 stays linked by H's chain with no VMA using it and
#: no child, so its degree must be 0
REUSED_LEAF = """
description: a leaf anon_vma left in a grandchild's chain
processes:
  - name: P
    vmas:
      - {name: a, start: 0x100000, pages: 2, prot: rw, faulted: [0, 1]}
steps:
  - {fork: P, child: C}
  - {fork: C, child: G}
  - {exit: C}
  - {fork: G, child: H}
  - {exit: G}
"""


def test_a_wrong_degree_of_an_anon_vma_nothing_uses_is_found() -> None:
    """Under the degree counters an anon_vma no VMA uses and no child has (AV3, only linked by
    H/a's chain) has degree 0; a degree of 1 is an I4 finding (the split counters' fields,
    both 0 under this era, say nothing about it)."""
    r = _replayed(REUSED_LEAF, "degree")
    leaf = _av(r, "AV3")
    assert r.k.mms["H"].vmas[0].anon_vma is _av(r, "AV2") and leaf.degree == 0
    leaf.degree = 1
    full, new = _both(r, leaf)
    assert full == new == [("I4", "AV3", "degree 1; recount gives degree 0")]


class OwnDegree(DegreeCounters):
    """A policy's own counters class: the degree counters, subclassed."""


class DegreeWithoutSelfLink(DegreeCounters):
    """A policy's own counters class whose degree leaves the root's self link out (the model's
    bumps put it in: DegreeCounters.child_linked() for a new root)."""

    def expected(self, vmas: int, children: int,
                 is_root_linked: bool) -> tuple[tuple[str, int], ...]:
        return (("degree", vmas + children),)


def _own(counters: DegreeCounters) -> Policy:
    class Own(Degree):
        name = "own-counters"

    Own.counters = counters
    return Own()


def test_a_policys_own_counters_class_is_compared_by_its_own_rule() -> None:
    """A policy may bring its own counters class (even a plain subclass of a built-in one):
    the checks compare its values() with its expected(), not with a built-in era's fields.
    A wrong degree is found under a subclass; under a rule without the self link every linked
    root the model counted with it is an I4 finding, by the full recount and the incremental
    checks alike, its text following the root's degree."""
    r = _forked_twice(_own(OwnDegree()))
    target = _av(r, "AV2")
    target.degree = 5
    full, new = _both(r, target)
    assert full == new == [("I4", "AV2", "degree 5; recount gives degree 2")]

    text = FORK_TWICE
    policy = _own(DegreeWithoutSelfLink())
    full_replay = replay(loads(text, "own.yaml"), policy, checks="full", snapshots=False)
    assert replay(loads(text, "own.yaml"), policy, checks="incremental",
                  snapshots=False) == full_replay
    assert [(f.kind, f.where, f.detail, f.step, f.active) for f in full_replay.final.findings] == [
        ("I4", "AV1", "degree 2; recount gives degree 1", 0, False),
        ("I4", "AV1", "degree 3; recount gives degree 2", 1, True)]


def test_a_chain_spanning_two_roots_names_both(monkeypatch: pytest.MonkeyPatch) -> None:
    """Spec I1: the anon_vma_fork() of a VMA whose anon_vma was freed (scenarios/found, kk-v1)
    gives C16/v1.1 a chain under two roots; the finding names both, in name order."""
    monkeypatch.chdir(ROOT)
    sc = load("scenarios/found/wei-intended-uaf-root-ref.yaml")
    for how in ("full", "incremental"):
        found = replay(sc, "v1", checks=how, snapshots=False).final.findings
        assert [(f.where, f.detail, f.step) for f in found if f.kind == "I1"] == [
            ("C16/v1.1", "chain spans roots AV2, AV9", 25)]


#: two VMAs of P; a is eight pages with one faulted (so larger than P's page table: the checks
#: walk the page table, not the VMA's range)
SPARSE = """
description: a large VMA with one page faulted, a small one beside
processes:
  - name: P
    vmas:
      - {name: a, start: 0x100000, pages: 8, prot: rw, faulted: [0]}
      - {name: b, start: 0x200000, pages: 1, prot: rw, faulted: true}
"""


@pytest.mark.parametrize("freed", [False, True])
def test_a_rmap_miss_on_the_first_page_of_a_large_vma_is_found(freed: bool) -> None:
    """Spec I6: P/a's only page (its first) made to point at b's anon_vma, which a's chain
    lacks, is an rmap miss; with that anon_vma freed, I6-UAF.  P has two ptes and a is eight
    pages: the page table is the shorter walk."""
    r = _replayed(SPARSE, "split-counters")
    assert checks.check(r.k) == [] and r.checker.current() == set()
    mm = r.k.mms["P"]
    a, b = mm.vmas
    assert len(mm.ptes) == 2 and a.end - a.start == 8
    mm.ptes[a.start].mapping = b.anon_vma
    if freed:
        r.k.free_readback(b.anon_vma)
    r.k.dirty_vmas.add(a)
    full, new = _both(r)
    assert full == new
    want = "pg0 mapped, its anon_vma AV2 is freed" if freed else \
        "pg0 mapping AV2 not in chain (rmap miss)"
    assert [v for v in new if v[1] == "P/a"] == [("I6-UAF" if freed else "I6", "P/a", want)]


# -- I3 groups, by hand -----------------------------------------------------------------------
# C's VMA, forked from P's, split in four: C/a, C/b, C/c and C/d share AV2 with the chain
# [AV2, AV1] (one I3 group, C/a its lowest member); D's copy has AV3, also under AV1.  A policy's
# anon_vma_clone() that links one entry too many is played by linking AV3 into a piece's chain
# by hand (anon_vma_chain_link(), which marks the VMA for the checks as the model does): that
# piece's chain differs from C/a's, an I3 finding naming C/a and the piece.
SPLIT_FOUR = """
description: a forked VMA split in four, one anon_vma
processes:
  - name: P
    vmas:
      - {name: a, start: 0x100000, pages: 8, prot: rw, faulted: true}
steps:
  - {fork: P, child: C}
  - {fork: P, child: D}
  - {split: C/a, at: 2, new: b}
  - {split: C/b, at: 2, new: c}
  - {split: C/c, at: 2, new: d}
"""


class _ByHand(_Replayer):
    """A replay with a change made by hand after some steps (before that step's checks), as a
    buggy policy would have made it."""

    def __init__(self, text: str, policy: str, how: str,
                 hands: dict[int, Callable[[Kernel], None]]) -> None:
        super().__init__(loads(text, "by-hand.yaml"), get(policy), how, False)
        self.hands = hands

    def record(self) -> None:
        hand = self.hands.get(self.step_no)
        if hand is not None:
            hand(self.k)
        super().record()


def _findings(text: str, hands: dict[int, Callable[[Kernel], None]],
              policy: str = "split-counters") -> list[tuple[str, str, str, int, bool]]:
    """The invariant findings of ``text`` with the changes by hand, the same with either way of
    checking."""
    out = []
    for how in ("full", "incremental"):
        r = _ByHand(text, policy, how, hands)
        r.steps()
        out.append([(f.kind, f.where, f.detail, f.step, f.active) for f in r.current_findings()
                    if f.kind.startswith("I")])
    assert out[0] == out[1]
    return out[0]


def _vma(k: Kernel, where: str) -> Vma:
    mm, _, name = where.partition("/")
    vma = k.mms[mm].by_name(name)
    assert vma is not None
    return vma


def _av_named(k: Kernel, name: str) -> AnonVma:
    return next(av for av in k.anon_vmas if av.name == name)


def _link_av3(*pieces: str) -> Callable[[Kernel], None]:
    def hand(k: Kernel) -> None:
        for where in pieces:
            anon_vma_chain_link(k, _vma(k, where), _av_named(k, "AV3"))
    return hand


def _rename(where: str, name: str) -> Callable[[Kernel], None]:
    def hand(k: Kernel) -> None:            # as engine.reshape() names a piece
        vma = _vma(k, where)
        vma.name = name
        vma.mm.touch(vma)
    return hand


I3 = "same anon_vma AV2, different chains"


def test_two_members_of_a_group_changed_in_one_step_are_both_checked() -> None:
    """C/b's and C/c's chains both change in one step: each differs from C/a's."""
    assert _findings(SPLIT_FOUR, {5: _link_av3("C/b", "C/c")}) == [
        ("I3", "C/a+b", I3, 5, True), ("I3", "C/a+c", I3, 5, True)]


def test_a_member_unmapped_takes_its_i3_finding_along() -> None:
    """C/c, whose chain differs, is unmapped: its finding stops holding while C/a, C/b and C/d
    stay a group."""
    assert _findings(SPLIT_FOUR + "  - munmap: C/c\n", {5: _link_av3("C/c")}) == [
        ("I3", "C/a+c", I3, 5, False)]


def test_a_piece_split_off_a_member_with_a_different_chain_joins_the_group() -> None:
    """Splitting C/c (its chain differs) makes a piece with its chain: a second finding."""
    assert _findings(SPLIT_FOUR + "  - {split: C/c, at: 1, new: e}\n", {5: _link_av3("C/c")}) == [
        ("I3", "C/a+c", I3, 5, True), ("I3", "C/a+e", I3, 6, True)]


def test_a_renamed_member_is_named_by_its_new_name() -> None:
    """C/c (chain differs) is renamed z, its chain and anon_vma unchanged: the finding with
    the old name stops holding and one with the new name is made."""
    assert _findings(SPLIT_FOUR + "  - {fork: P, child: E}\n",
                     {5: _link_av3("C/c"), 6: _rename("C/c", "z")}) == [
        ("I3", "C/a+c", I3, 5, False), ("I3", "C/a+z", I3, 6, True)]


def test_a_renamed_lowest_member_renames_every_finding() -> None:
    """The lowest member, C/a, is renamed z: each finding names it."""
    assert _findings(SPLIT_FOUR + "  - {fork: P, child: E}\n",
                     {5: _link_av3("C/b"), 6: _rename("C/a", "z")}) == [
        ("I3", "C/a+b", I3, 5, False), ("I3", "C/z+b", I3, 6, True)]


def test_the_lowest_members_chain_changing_changes_every_finding() -> None:
    """C/b's chain differs; then C/a's changes the same way: C/b agrees with it now, C/c and
    C/d do not."""
    assert _findings(SPLIT_FOUR + "  - {fork: P, child: E}\n",
                     {5: _link_av3("C/b"), 6: _link_av3("C/a")}) == [
        ("I3", "C/a+b", I3, 5, False), ("I3", "C/a+c", I3, 6, True),
        ("I3", "C/a+d", I3, 6, True)]


def test_a_new_lowest_member_is_first_in_every_finding() -> None:
    """C/d moves below C/a (mremap: copy_vma() keeps its anon_vma and chain): the moved copy is
    the group's lowest member now, and C/b's finding names it."""
    assert _findings(SPLIT_FOUR + "  - {mremap: C/d, flags: [maymove, fixed], to: 0x80000}\n",
                     {5: _link_av3("C/b")}) == [
        ("I3", "C/a+b", I3, 5, False), ("I3", "C/d+b", I3, 6, True)]


def _repoint(where: str, name: str) -> Callable[[Kernel], None]:
    def hand(k: Kernel) -> None:            # vma->anon_vma set, no counter bumped, no link
        vma = _vma(k, where)
        vma.anon_vma = _av_named(k, name)
        k.dirty_vmas.add(vma)
    return hand


def test_a_vma_repointed_to_an_anon_vma_of_its_chain_moves_its_count() -> None:
    """A policy's hook points C/c at AV1 (in its chain: no I2) without touching a counter: AV2
    is used by one VMA fewer than it counts, AV1 by one more, C/c leaves AV2's group."""
    assert _findings(SPLIT_FOUR, {5: _repoint("C/c", "AV1")}) == [
        ("I4", "AV1", "num_children 3, num_active_vmas 1; recount gives num_children 3, "
                      "num_active_vmas 2", 5, True),
        ("I4", "AV2", "num_children 0, num_active_vmas 4; recount gives num_children 0, "
                      "num_active_vmas 3", 5, True)]


def _free(name: str) -> Callable[[Kernel], None]:
    def hand(k: Kernel) -> None:            # anon_vma_free() under VMAs still using it
        k.free_readback(_av_named(k, name))
    return hand


def test_a_group_whose_anon_vma_is_freed_keeps_its_finding() -> None:
    """AV2 is freed under C's four VMAs (a use-after-free) while C/d's chain changes: each
    reports it, in address order whether its chain changed or not, and C/b's I3 finding,
    whose text names AV2, still holds."""
    found = _findings(SPLIT_FOUR + "  - {fork: P, child: E}\n",
                      {5: _link_av3("C/b"), 6: _both_hands(_free("AV2"), _link_av3("C/d"))})
    assert ("I3", "C/a+b", I3, 5, True) in found
    assert [f[1] for f in found if f[:3] == ("I7-UAF", f[1], "vma->anon_vma AV2 is freed")] == [
        "C/a", "C/b", "C/c", "C/d"]


# P's two VMAs forked to C and D; C's a and z each split in two: two groups in C, (C/a, C/b)
# under AV3 and (C/z, C/y) under AV4; D's copies have AV5 and AV6.  Linking D's anon_vma into
# a piece of C by hand makes that piece's chain differ.
TWO_GROUPS = """
description: two forked VMAs, each split in two
processes:
  - name: P
    vmas:
      - {name: a, start: 0x100000, pages: 4, prot: rw, faulted: true}
      - {name: z, start: 0x200000, pages: 4, prot: rw, faulted: true}
steps:
  - {fork: P, child: C}
  - {fork: P, child: D}
  - {split: C/a, at: 2, new: b}
  - {split: C/z, at: 2, new: y}
  - {fork: P, child: E}
"""


def _link(where: str, name: str) -> Callable[[Kernel], None]:
    def hand(k: Kernel) -> None:
        anon_vma_chain_link(k, _vma(k, where), _av_named(k, name))
    return hand


def _both_hands(*hands: Callable[[Kernel], None]) -> Callable[[Kernel], None]:
    def hand(k: Kernel) -> None:
        for h in hands:
            h(k)
    return hand


@pytest.mark.parametrize("lowest", ["C/a", "C/z"])
def test_findings_of_two_groups_come_out_by_their_lowest_member(lowest: str) -> None:
    """In one step, the lowest member of one group changes its chain (the whole group is
    looked at again) and another member of the other group changes its own: the new findings
    come out as the full recount orders them, by each group's lowest member, C/a's group
    first."""
    other = {"C/a": "C/y", "C/z": "C/b"}[lowest]
    hands = _both_hands(*(_link(v, "AV5" if v in ("C/a", "C/b") else "AV6")
                          for v in sorted((lowest, other))))
    assert _findings(TWO_GROUPS, {5: hands}) == [
        ("I3", "C/a+b", "same anon_vma AV3, different chains", 5, True),
        ("I3", "C/z+y", "same anon_vma AV4, different chains", 5, True)]


#: C's VMA split from the top down, so that each new piece lies below the one made before it
SPLIT_DOWN = """
description: a forked VMA split in five, from the top
processes:
  - name: P
    vmas:
      - {name: a, start: 0x100000, pages: 10, prot: rw, faulted: true}
steps:
  - {fork: P, child: C}
  - {fork: P, child: D}
  - {split: C/a, at: 8, new: e}
  - {split: C/a, at: 6, new: d}
  - {split: C/a, at: 4, new: c}
  - {split: C/a, at: 2, new: b}
"""


def test_findings_of_several_members_come_out_by_address() -> None:
    """Four members change in one step, the lowest does not: their findings come out by
    address, as the full recount gives them."""
    assert _findings(SPLIT_DOWN, {6: _link_av3("C/e", "C/c", "C/d", "C/b")}) == [
        ("I3", "C/a+b", I3, 6, True), ("I3", "C/a+c", I3, 6, True),
        ("I3", "C/a+d", I3, 6, True), ("I3", "C/a+e", I3, 6, True)]


def test_an_anon_vma_named_later_renames_the_findings_about_it() -> None:
    """C/c is pointed at an anon_vma no chain holds and no one named yet (I2 "(unnamed)"); a
    later step names it (nothing is freed in between): the finding takes the name."""
    unnamed: dict[Kernel, AnonVma] = {}     # one per replay

    def point(k: Kernel) -> None:
        vma = _vma(k, "C/c")
        vma.anon_vma = unnamed[k] = AnonVma()
        k.dirty_vmas.add(vma)

    found = _findings(SPLIT_FOUR + "  - {fork: P, child: E}\n",
                      {5: point, 6: lambda k: k.name(unnamed[k])})
    assert [f for f in found if f[0] == "I2"] == [
        ("I2", "C/c", "anon_vma (unnamed) not in own chain", 5, False),
        ("I2", "C/c", "anon_vma AV5 not in own chain", 6, True)]


def test_a_vma_that_left_its_mm_is_not_looked_at_again() -> None:
    """C/d leaves its mm with its chain still linked (an unmap that forgot
    unlink_anon_vmas()); when AV2 is freed later, the free marks every VMA of AV2's tree,
    C/d too: the checks pass over it, as the full recount does (it is in no mm)."""
    def unmap(k: Kernel) -> None:
        k.mms["C"].remove(_vma(k, "C/d"))

    found = _findings(SPLIT_FOUR + "  - {fork: P, child: E}\n  - {fork: P, child: F}\n",
                      {6: unmap, 7: _free("AV2")})
    assert [f[1] for f in found if f[2] == "vma->anon_vma AV2 is freed"] == ["C/a", "C/b", "C/c"]


class ForgetsTheChain(SplitCountersPolicy):
    """A policy whose __anon_vma_prepare() never links the new anon_vma into the VMA's chain
    (anon_vma_chain_link() left out): the VMA keeps an anon_vma its empty chain lacks."""

    name = "forgets-the-chain"

    def attach_anon_vma(self, k: Kernel, vma: Vma, av: AnonVma) -> None:
        vma.anon_vma = av
        k.counters.vma_attached(av)


def test_every_process_of_the_starting_layout_is_checked() -> None:
    """Two processes laid out at once, each VMA faulted by a policy that forgets the chain:
    the model marks nothing for the checks (no chain was linked), yet every VMA of both is
    checked at the start: I2 and I6 for P/a and for Q/a alike."""
    sc = loads("""
description: two processes at the start
processes:
  - name: P
    vmas:
      - {name: a, start: 0x100000, pages: 1, prot: rw, faulted: true}
  - name: Q
    vmas:
      - {name: a, start: 0x100000, pages: 1, prot: rw, faulted: true}
""", "two.yaml")
    full = replay(sc, ForgetsTheChain(), checks="full", snapshots=False)
    assert replay(sc, ForgetsTheChain(), checks="incremental", snapshots=False) == full
    assert [(f.kind, f.where, f.detail) for f in full.final.findings if f.kind in ("I2", "I6")] == [
        ("I2", "P/a", "anon_vma (unnamed) not in own chain"),
        ("I6", "P/a", "pg0 mapping (unnamed) not in chain (rmap miss)"),
        ("I2", "Q/a", "anon_vma (unnamed) not in own chain"),
        ("I6", "Q/a", "pg1 mapping (unnamed) not in chain (rmap miss)")]


def test_every_anon_vma_of_a_step_is_counted_again_after_one_freed() -> None:
    """Under a counters rule of a policy's own (degree without the self link) each of P's eight
    roots is an I4 finding; C's exit frees the eight children, and each root's degree falls
    by one: every root's finding changes in that step, however the freed and the live
    anon_vmas of the step are ordered."""
    vmas = "".join(f"      - {{name: v{i}, start: {0x100000 * (i + 1):#x}, pages: 1, prot: rw, "
                   f"faulted: true}}\n" for i in range(8))
    sc = loads("description: eight roots\nprocesses:\n  - name: P\n    vmas:\n" + vmas
               + "steps:\n  - {fork: P, child: C}\n  - {exit: C}\n", "eight.yaml")
    policy = _own(DegreeWithoutSelfLink())
    full = replay(sc, policy, checks="full", snapshots=False)
    assert replay(sc, policy, checks="incremental", snapshots=False) == full
    assert [(f.where, f.detail, f.step) for f in full.final.findings if f.active] == [
        (f"AV{i}", "degree 2; recount gives degree 1", 2) for i in range(1, 9)]


def test_touch_collects_the_members_that_changed() -> None:
    """_touch(): a group's first touch in a round puts it on the round's list and, for a group
    checked as one, starts its set of changed members; later ones add to the set, a touch of
    every member (None) makes it None for the rest of the round, and a group never checked as
    one is looked at whole (None) without collecting members, or not at all while it has fewer
    than two."""
    mm = Mm("P")
    a, b = (Vma(mm, s, s + 1, s, frozenset(), frozenset(), None, n)
            for s, n in ((16, "A"), (18, "B")))
    checked, other, new = (checks._Group(mm, AnonVma()) for _ in range(3))
    checked.first = other.first = a
    new.members.add(a)
    touched: list[checks._Group] = []
    checks._touch(touched, new, a, 1)               # one member, never checked: nothing to do
    assert touched == [] and new.mark == 0
    new.members.add(b)
    checks._touch(touched, other, None, 1)
    checks._touch(touched, checked, a, 1)
    checks._touch(touched, new, b, 1)
    assert touched == [other, checked, new]
    assert (other.changed, checked.changed, new.changed) == (None, {a}, None)
    checks._touch(touched, checked, b, 1)
    checks._touch(touched, other, a, 1)
    checks._touch(touched, new, a, 1)
    assert touched == [other, checked, new]
    assert (other.changed, checked.changed, new.changed) == (None, {a, b}, None)
    checks._touch(touched, checked, None, 1)
    assert checked.changed is None
    # the next round starts afresh
    checks._touch(touched, checked, b, 2)
    assert touched == [other, checked, new, checked] and checked.changed == {b}


def test_same_chain_and_linked_compare_by_identity_head_first() -> None:
    """_same_chain(): the same_vma list (stored tail first) against a chain seen head first,
    entry by entry and in length; _linked(): membership by identity."""
    vma = Vma(Mm("P"), 16, 17, 16, frozenset(), frozenset(), None, "A")
    head, tail, other = AnonVma(), AnonVma(), AnonVma()
    vma.avcs = [AnonVmaChain(vma, tail, 1), AnonVmaChain(vma, head, 2)]
    assert checks._same_chain(vma.avcs, (head, tail))
    assert not checks._same_chain(vma.avcs, (tail, head))
    assert not checks._same_chain(vma.avcs, (head, other))
    assert not checks._same_chain(vma.avcs, (head,))
    assert not checks._same_chain(vma.avcs, (head, tail, other))
    assert checks._same_chain([], ())
    assert checks._linked((head, tail), tail) and not checks._linked((head, tail), other)
    assert not checks._linked((), head)


# -- a buggy policy, at random ---------------------------------------------------------------
def _damage(k: Kernel, rng: random.Random) -> None:
    """One change a buggy policy's hook could make, made the way the model notes it for the
    checks (the marks are the contract: a change nobody marks is not the checks' to find)."""
    vmas = [v for mm in k.mms.values() for v in mm.vmas]
    live = sorted(k.live, key=lambda av: av.seq)
    if not vmas or not live:
        return
    vma, av = rng.choice(vmas), rng.choice(live)
    kind = rng.choice((0, 0, 1, 1, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 8, 9))  # a free: rarer
    if kind == 0:                           # anon_vma_clone() linking one too many
        anon_vma_chain_link(k, vma, av)
    elif kind == 1:                         # vma->anon_vma set, no counter bumped, no link
        vma.anon_vma = av if rng.random() < 0.8 else None
        k.dirty_vmas.add(vma)
    elif kind == 2:                         # anon_vma_free() under its users
        k.free_readback(av)
    elif kind == 3 and vma.avcs:            # a counter of the VMA's chain or own off by one
        chain = [avc.anon_vma for avc in vma.avcs]
        target = rng.choice(chain + [vma.anon_vma or chain[0]])
        field = rng.choice(("degree", "num_children", "num_active_vmas", "refcount"))
        setattr(target, field, getattr(target, field) + rng.choice((-1, 1)))
        k.dirty_vmas.add(vma)
    elif kind == 4 and len(vma.avcs) > 1:   # the same chain in another order
        rng.shuffle(vma.avcs)
        k.dirty_vmas.add(vma)
    elif kind == 5 and vma.avcs:            # a link dropped (and out of its interval tree)
        avc = vma.avcs.pop(rng.randrange(len(vma.avcs)))
        del avc.anon_vma.tree[avc]
        k.dirty_vmas.add(vma)
    elif kind == 6:                         # a page only this mm maps moved to another anon_vma
        ptes = vma.mm.ptes
        mine = [p for p in sorted(ptes) if ptes[p].mapcount == 1]
        if mine:
            p = rng.choice(mine)
            ptes[p].mapping = av
            vma.mm.touch_range(p, p + 1)
    elif kind == 7:                         # a counter changed, the anon_vma itself marked
        av.refcount += rng.choice((-1, 1))
        k.dirty_avs.add(av)
    elif kind == 8 and av.parent is not None:   # anon_vma_fork() giving the wrong parent
        av.parent = rng.choice(live)
        k.dirty_avs.add(av)
    elif kind == 9:                         # ... or the wrong root (its chains span two
        av.root = rng.choice(live)          # roots now: their VMAs marked, as by a free)
        k.dirty_avs.add(av)
        k.dirty_vmas.update(avc.vma for avc in av.tree)


class _Damaged(_Replayer):
    """A replay under a policy that, after some steps, breaks something at random; with the
    incremental checks, held to the full recount after every step."""

    def __init__(self, sc: Scenario, policy: str, how: str, seed: int) -> None:
        super().__init__(sc, get(policy), how, False)
        self.rng = random.Random(seed)

    def record(self) -> None:
        if self.rng.random() < 0.5:
            _damage(self.k, self.rng)
        super().record()
        if self.checker is not None:
            have, full = self.checker.current(), set(checks.check(self.k))
            assert have == full, (self.step_no, sorted(have - full), sorted(full - have))


def _damaged_run(sc: Scenario, policy: str, how: str, seed: int) -> Replay | str:
    """The replay, or the error that ended it (a VMA a later step names may not be there
    when the damage changed what merged)."""
    try:
        return _Damaged(sc, policy, how, seed).run()
    except ReplayError as e:
        return str(e)


@pytest.mark.parametrize("policy", ["split-counters", "degree", "v1", "clone-rework-2026"])
def test_random_damage_is_found_as_the_full_recount_finds_it(
        policy: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every shipped scenario and 40 drawn as a search draws them, five times each, with a
    policy that breaks something at random after half its steps (links, anon_vma pointers, frees, counters,
    chain order, pages, parents and roots): after every step
    the incremental checks hold exactly the full recount's violations, and the findings come
    out the same, in the same order."""
    monkeypatch.chdir(ROOT)
    kinds: Counter[str] = Counter()
    drawn = [generate(7, i, Budget()) for i in range(40)]
    for n, sc in enumerate([load(str(path)) for path in SCENARIOS] + drawn):
        if not accepts(sc, policy):
            continue
        for seed in range(1000 + 5 * n, 1005 + 5 * n):
            runs = [_damaged_run(sc, policy, how, seed) for how in ("incremental", "full")]
            assert runs[0] == runs[1], (sc.name, seed)
            if isinstance(runs[0], Replay):
                kinds.update(f.kind for f in runs[0].final.findings)
    assert {"I1", "I2", "I3", "I4", "I5", "I6", "I6-UAF", "I7-UAF"} <= set(kinds), kinds


#: two VMAs of P share AV0 from the start (the seed thread's SRC VMAs)
SHARED_AT_START = """
description: two VMAs sharing one anon_vma in the starting layout
processes:
  - name: P
    vmas:
      - {name: a, start: 0x100000, pages: 1, prot: rw, faulted: true, anon_vma: AV0}
      - {name: b, start: 0x102000, pages: 1, prot: r, faulted: true, anon_vma: AV0}
      - {name: z, start: 0x200000, pages: 1, prot: rw, faulted: true}
steps:
  - {fork: P, child: C}
"""


def test_a_group_broken_in_the_starting_layout_is_found_at_step_0() -> None:
    """The first round of the checks (the starting layout, step 0) looks at every I3 group as
    any later round does: P/b's chain made to differ from P/a's (z's anon_vma linked in by a
    buggy policy) before the layout's checks is an I3 finding at step 0."""
    def link_z(k: Kernel) -> None:
        anon_vma_chain_link(k, _vma(k, "P/b"), _vma(k, "P/z").anon_vma)
    found = _findings(SHARED_AT_START, {0: link_z})
    assert ("I3", "P/a+b", "same anon_vma AV0, different chains", 0, True) in found
