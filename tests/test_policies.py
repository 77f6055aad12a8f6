"""Targeted statements of the spec, one policy decision each, on small scenarios."""
from __future__ import annotations

from pathlib import Path

import pytest

from anondiff import policies
from anondiff.engine import replay
from anondiff.scenario import load, loads
from anondiff.topology import Topology
from .eras import accepts

ROOT = Path(__file__).resolve().parent.parent
SEED = str(ROOT / "scenarios" / "seed-thread.yaml")


def run(text: str, policy: str) -> Topology:
    return replay(loads(text, "t.yaml"), policy).final


def test_registry_names_and_aliases() -> None:
    assert policies.names() == ["always-new", "degree", "wei-4e4a9eb92133", "wei-intended", "v1",
                                "v2", "split-counters", "clone-rework-2026", "mirror-parent"]
    assert policies.get("v4.19").name == "degree"
    assert policies.get("v4.14").name == "degree"
    assert policies.get("v4.9").name == policies.get("v4.4").name == "v3.19"
    assert policies.get("v6.18").name == "split-counters"
    assert policies.get("kk-v2").name == "v2"
    assert policies.get("v5.15").name == "v5.10"
    with pytest.raises(Exception, match="unknown policy: 'v9.9'"):
        policies.get("v9.9")


UNFAULTED_NEIGHBOUR = """
description: A is faulted (never forked), B next to it is not; both become read-write-exec.
processes:
  - name: P
    vmas:
      - {name: A, start: 0x10000, pages: 1, prot: rw, faulted: true}
      - {name: B, start: 0x11000, pages: 1, prot: rw}
steps:
  - {mprotect: P/B, prot: rwx}
  - {mprotect: P/A, prot: rwx}
"""


def test_three_case_merge_rule_merges_faulted_into_unfaulted() -> None:
    # spec 1.5: "an unfaulted VMA next to a faulted, non-forked one: 6.18 merges, the old rule
    # refuses" (the target's empty chain is not singular).  Both stay writable, so both keep
    # VM_ACCOUNT (made read-only, the unfaulted B would lose it from v6.7 and never merge).
    merged = run(UNFAULTED_NEIGHBOUR, "split-counters").process("P")
    # next (B) expands down over A, which goes; B imports A's anon_vma (dup_anon_vma)
    assert [v.name for v in merged.vmas] == ["B"]
    b = merged.vmas[0]
    assert (b.start, b.end, b.anon_vma, b.chain) == (0x10000, 0x12000, "AV1", ("AV1",))
    assert b.pages[0].mapping == "AV1" and b.pages[0].in_chain
    for old in ("v6.1", "degree", "always-new"):
        kept = run(UNFAULTED_NEIGHBOUR, old).process("P")
        assert [v.name for v in kept.vmas] == ["A", "B"], old


def test_vm_account_keeps_a_never_writable_mapping_apart() -> None:
    # B mapped read-only never gets VM_ACCOUNT; A (writable once) has it: the flags differ
    # beyond VM_READ|VM_WRITE|VM_EXEC, so no merge and no anon_vma sharing.
    text = UNFAULTED_NEIGHBOUR.replace("prot: rw}\nsteps:\n  - {mprotect: P/B, prot: rwx}\n",
                                       "prot: r}\nsteps:\n")
    t = run(text, "split-counters")
    assert [v.name for v in t.process("P").vmas] == ["A", "B"]
    assert "account" in t.vma("P/A").flags and "account" not in t.vma("P/B").flags
    t = run(text + "  - write: P/B\n", "split-counters")
    assert t.vma("P/B").anon_vma != t.vma("P/A").anon_vma


def test_three_case_rule_refuses_a_fork_child() -> None:
    # the same in a forked child: its A has a chain [own, parent's] (vma_is_fork_child)
    text = UNFAULTED_NEIGHBOUR.replace("steps:\n", "steps:\n  - {fork: P, child: C}\n") \
        .replace("P/B", "C/B").replace("P/A", "C/A")
    t = run(text, "split-counters")
    assert [v.name for v in t.process("C").vmas] == ["A", "B"]
    assert t.vma("C/B").prot == t.vma("C/A").prot == ("read", "write", "exec")


# mprotect_fixup() clears VM_ACCOUNT of an anonymous VMA without anon_vma made non-writable
# since commit 9b9143298585 ("mm/mprotect: allow unfaulted VMAs to be unaccounted on
# mprotect()") (v6.7): the three cases the live 6.18 kernel showed the model had wrong.
V67 = ("split-counters", "clone-rework-2026", "mirror-parent")
PRE_V67 = ("v6.1", "v5.10", "degree", "v3.19", "always-new")


def two_vmas(a: str, b: str, steps: str) -> str:
    return ("description: two adjacent anonymous VMAs\nprocesses:\n  - name: P\n    vmas:\n"
            f"      - {{name: A, start: 0x10000, pages: 1, {a}}}\n"
            f"      - {{name: B, start: 0x11000, pages: 1, {b}}}\nsteps:\n{steps}")


@pytest.mark.parametrize("policy", V67 + PRE_V67)
def test_mprotect_unaccounts_an_unfaulted_vma(policy: str) -> None:
    # the patch's own example: A read-only, B read-write never written, B made read-only
    t = run(two_vmas("prot: r", "prot: rw", "  - {mprotect: P/B, prot: r}\n"), policy)
    if policy in V67:
        assert [(v.name, v.end, v.flags) for v in t.process("P").vmas] == [("A", 0x12000, ())]
    else:
        assert [(v.name, v.flags) for v in t.process("P").vmas] == [("A", ()), ("B", ("account",))]


@pytest.mark.parametrize("policy", V67 + PRE_V67)
def test_written_and_unwritten_made_none_merge_only_before_v67(policy: str) -> None:
    t = run(two_vmas("prot: rw, faulted: true", "prot: rw",
                     "  - {mprotect: P, start: 0x10000, end: 0x12000, prot: none}\n"), policy)
    names = [v.name for v in t.process("P").vmas]
    assert names == (["A", "B"] if policy in V67 else ["A"])
    assert "account" in t.vma("P/A").flags


@pytest.mark.parametrize("policy", V67 + PRE_V67)
def test_unaccounted_vma_does_not_reuse_its_neighbours_anon_vma(policy: str) -> None:
    # anon_vma_compatible() compares VM_ACCOUNT: B (no longer accounted) gets a root of its own
    t = run(two_vmas("prot: rw, faulted: true", "prot: rwx",
                     "  - {mprotect: P/B, prot: none}\n  - write: P/B\n"), policy)
    a, b = t.vma("P/A"), t.vma("P/B")
    if policy in V67:
        assert b.anon_vma != a.anon_vma and b.chain == (b.anon_vma,) and "account" not in b.flags
    else:
        assert b.anon_vma == a.anon_vma and "account" in b.flags


@pytest.mark.parametrize("policy", V67)
def test_mprotect_keeps_vm_account_when_the_protection_does_not_change(policy: str) -> None:
    # the early "newflags == oldflags" return comes before the VM_ACCOUNT adjustment
    t = run(two_vmas("prot: rw, faulted: true", "prot: r, flags: [account]",
                     "  - {mprotect: P/B, prot: r}\n  - write: P/B\n"), policy)
    assert "account" in t.vma("P/B").flags and t.vma("P/B").anon_vma == t.vma("P/A").anon_vma


@pytest.mark.parametrize("policy", V67)
def test_a_faulted_vma_made_read_only_keeps_vm_account(policy: str) -> None:
    t = run(two_vmas("prot: rw, faulted: true", "prot: r", "  - {mprotect: P/A, prot: r}\n"),
            policy)
    assert "account" in t.vma("P/A").flags


WIPE = (ROOT / "scenarios" / "kernel-runs" / "wipe_poke_parent.yaml").read_text()


@pytest.mark.parametrize("policy,expected", [
    ("v3.19", "AV2"),           # v3.19..v4.13: no such flag, a copy (AV2, child of P's AV1)
    ("degree", "AV1"),          # v4.14..v5.5: prepared at fork through the parent's neighbours
    ("v5.10", None),            # v5.6+: left unfaulted
    ("split-counters", None),
    ("v2", "AV2"),              # v2 2/2: the child's own prev, a new root
])
def test_wipeonfork_by_era(policy: str, expected: str | None) -> None:
    assert run(WIPE, policy).vma("C/W1").anon_vma == expected


def test_always_new_has_no_parent_and_no_counters() -> None:
    t = run(WIPE, "always-new")
    assert all(a.parent is None and a.counters == () for a in t.anon_vmas)
    assert any(f.kind == "NOTE" and "VM_WIPEONFORK" in f.detail for f in t.findings)


# -- VM_WIPEONFORK exists from v4.14: commit d2cd9ede6e19 ("mm,fork: introduce MADV_WIPEONFORK")

def invoke(*args: str):  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from anondiff.cli import main
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.mark.parametrize("version,policy", [
    ("v3.19-rc4", "v3.19"), ("v4.4", "v3.19"), ("v4.9", "v3.19"), ("v4.13", "v3.19"),
    ("v4.8.5", "v3.19"), ("v4.14-rc1", "degree"), ("v4.14", "degree"), ("v5.4", "degree"),
])
def test_versions_before_v4_14_run_the_era_without_wipeonfork(version: str, policy: str) -> None:
    """MADV_WIPEONFORK came with commit d2cd9ede6e19 ("mm,fork: introduce MADV_WIPEONFORK") in
    v4.14-rc1: v3.19 .. v4.13 run degree's rule under the era name v3.19, v4.14 on degree."""
    r = invoke("run", str(ROOT / "scenarios" / "kernel-runs" / "wipe_poke_parent.yaml"),
               "-p", version, "--final-only", "--format", "list")
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith(f"== {policy}: commit 7a3ef208e662 ")
    assert ("VM_WIPEONFORK does not exist in this era" in r.stdout) == (policy == "v3.19")


def test_stable_versions_before_v4_14_are_sent_to_eras_honestly() -> None:
    """4.9.y took commit 2555283eb40d ("mm/rmap: Fix anon_vma->degree ambiguity leading to
    double-reuse"), but never VM_WIPEONFORK: the era it is sent to has the flag, and the note
    says so.  2.6.34.y .. 3.18.y after commit 7a3ef208e662 had no VM_WIPEONFORK either: v3.19,
    not degree (which empties such a VMA)."""
    r = invoke("run", SEED, "-p", "v4.9.300", "--final-only")
    assert r.exit_code == 0, r.output
    assert r.stderr == (
        "anondiff: v4.9.300: policy v3.19 (v3.19 .. v4.13 (4.4.y; 4.9.y until the 2555283eb40d "
        "backport)); 4.9.y took the backport of 2555283eb40d at a stable release not recorded "
        "here: after it, use -p split-counters (which has VM_WIPEONFORK, v4.14+; 4.9.y has "
        "not: there a wipeonfork VMA is copied like any other)\n")
    for old in ("v3.10.50", "v3.18.2", "v2.6.39.4"):
        r = invoke("run", SEED, "-p", old, "--final-only")
        assert r.stderr.endswith("took the backport of 7a3ef208e662 at a stable release not "
                                 "recorded here: after it, use -p v3.19\n"), old
    # a branch that had the flag gets no such remark
    r = invoke("run", SEED, "-p", "v4.19.100", "--final-only")
    assert r.stderr.endswith("after it, use -p split-counters\n")


WIPE_FAULTED = """
description: a faulted VM_WIPEONFORK VMA beside a faulted ordinary one, forked.
processes:
  - name: P
    vmas:
      - {name: A, start: 0x10000, pages: 1, prot: rw, faulted: true}
      - {name: W, start: 0x12000, pages: 2, prot: rw, faulted: true, flags: [wipeonfork]}
steps:
  - {fork: P, child: C}
"""


def run_json(text: str, version: str, tmp_path: Path) -> dict:
    import json
    path = tmp_path / "w.yaml"
    path.write_text(text)
    r = invoke("run", str(path), "-p", version, "--final-only", "--format", "json")
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)["runs"][0]["snapshots"][-1]


def test_v4_9_copies_a_wipeonfork_vma_like_any_other(tmp_path: Path) -> None:
    """Before commit d2cd9ede6e19 ("mm,fork: introduce MADV_WIPEONFORK") (v4.14) dup_mmap()
    has no VM_WIPEONFORK branch: the child's copy goes through anon_vma_fork() and
    copy_page_range() like any VMA, with the NOTE always-new gives.  From v4.14 (degree) it is
    wiped: no pages, and anon_vma_prepare() at fork gives it a root of its own."""
    old = run_json(WIPE_FAULTED, "v4.9", tmp_path)
    plain = run_json(WIPE_FAULTED.replace(", flags: [wipeonfork]", ""), "v4.9", tmp_path)
    child = {v["name"]: v for v in old["processes"][1]["vmas"]}
    parent = {v["name"]: v for v in old["processes"][0]["vmas"]}
    # a fork child of P/W (the degree rule: P/W's own AV2 is never reused, a new child of it)
    assert (child["W"]["anon_vma"], child["W"]["chain"]) == ("AV4", ["AV4", "AV2"])
    assert old["anon_vmas"][3]["name"] == "AV4" and old["anon_vmas"][3]["parent"] == "AV2"
    # the parent's two pages, shared, still mapped by AV2, which the child's chain holds
    assert [(p["name"], p["mapping"], p["in_chain"]) for p in child["W"]["pages"]] == \
        [("pg1", "AV2", True), ("pg2", "AV2", True)] == \
        [(p["name"], p["mapping"], p["in_chain"]) for p in parent["W"]["pages"]]
    # everything the same as without the flag, but the flag and one NOTE
    for procs in (old["processes"], plain["processes"]):
        for p in procs:
            for v in p["vmas"]:
                v["flags"] = [f for f in v["flags"] if f != "wipeonfork"]
    assert old["processes"] == plain["processes"] and old["anon_vmas"] == plain["anon_vmas"]
    assert plain["findings"] == []
    assert [(f["kind"], f["where"], f["detail"]) for f in old["findings"]] == [
        ("NOTE", "C/W", "VM_WIPEONFORK does not exist in this era; copied normally")]
    always_new = run_json(WIPE_FAULTED, "always-new", tmp_path)
    assert always_new["findings"] == old["findings"]

    new = run_json(WIPE_FAULTED, "v4.14", tmp_path)
    child = {v["name"]: v for v in new["processes"][1]["vmas"]}
    assert (child["W"]["anon_vma"], child["W"]["chain"], child["W"]["pages"]) == \
        ("AV4", ["AV4"], [])
    assert new["findings"] == []
    assert child["A"] == {v["name"]: v for v in old["processes"][1]["vmas"]}["A"]


def test_the_policy_listing_has_the_v3_19_era() -> None:
    out = invoke("policies").output
    assert "\nv3.19 (aliases: v4.4, v4.9)\n    versions: v3.19 .. v4.13 (4.4.y; 4.9.y until " \
           "the 2555283eb40d backport)\n    commit 7a3ef208e662 (\"mm: prevent endless growth of " \
           "anon_vma hierarchy\")\n    at fork:  degree; no VM_WIPEONFORK yet (v4.14): such a VMA " \
           "is copied like any other\n" in out
    assert "\ndegree (aliases: v4.14, v4.19, v5.4)\n    versions: v4.14 .. v5.4, " in out
    assert "  v3.19-rc4     .. v3.19\n  v4.14-rc1     .. degree\n" in out


SPLIT_AFTER_FORKS = """
description: two generations of forks, then the grandchild splits its VMA.
processes:
  - name: A
    vmas:
      - {name: m, start: 0x10000, pages: 2, prot: rw, faulted: true}
steps:
  - {fork: A, child: B}
  - {fork: B, child: C}
  - {mprotect: C/m, pages: 1, prot: r, names: [hi]}
"""


def test_2026_split_halves_have_mutually_reversed_chains() -> None:
    # spec section 8, Observation O-1: every clone reverses, splits included.
    t = run(SPLIT_AFTER_FORKS, "clone-rework-2026")
    lo, hi = t.vma("C/m"), t.vma("C/hi")
    assert len(lo.chain) == 3 and hi.chain == tuple(reversed(lo.chain))
    same = run(SPLIT_AFTER_FORKS, "split-counters")
    assert same.vma("C/m").chain == same.vma("C/hi").chain


def test_2026_reuses_first_eligible_of_parent_chain_head_first() -> None:
    sc = load(str(ROOT / "scenarios" / "kernel-runs" / "check4_o1_five_generations.yaml"))
    new, old = replay(sc, "clone-rework-2026").final, replay(sc, "split-counters").final
    # A->B->C->D->E as AV1..AV5 (A's is AV1); B and C unmapped: their anon_vmas AV2, AV3
    assert old.vma("F/m").anon_vma == "AV2"     # the oldest eligible
    assert new.vma("F/m").anon_vma == "AV3"     # Cv: first eligible of E's reversed chain


def test_v2_shares_only_a_fresh_child_of_the_parent_anon_vma() -> None:
    t = replay(load(str(ROOT / "scenarios" / "kk-old-anon-vmas.yaml")), "v2").final
    dst = [t.vma(f"C/DST{i}").anon_vma for i in range(1, 6)]
    assert dst[0] != dst[1] and len({dst[2], dst[3], dst[4]}) == 1 and dst[2] not in dst[:2]
    fresh = t.anon_vma(dst[2])
    assert fresh.parent == t.vma("P/SRC1").anon_vma


def test_v1_lets_a_reused_old_anon_vma_collect_every_user() -> None:
    t = replay(load(str(ROOT / "scenarios" / "kk-old-anon-vmas.yaml")), "v1").final
    old = t.vma("C/DST1").anon_vma
    assert old is not None
    assert t.anon_vma(old).users == tuple(f"C/DST{i}" for i in range(1, 6))
    assert t.anon_vma(old).counter("degree") == 5 + 1   # five VMAs and the child it already had


def test_mirror_parent_mirrors_sharing_groups() -> None:
    t = replay(load(str(ROOT / "scenarios" / "file-between-sharers.yaml")), "mirror-parent").final
    groups = {v.anon_vma for v in t.process("C").vmas if v.anon_vma}
    assert len(groups) == 1
    assert all(not f.kind.startswith("I") for f in t.findings)


def test_stated_vm_account_lets_a_read_only_vma_reuse_its_neighbour() -> None:
    # mapped writable, made read-only before the scenario starts: VM_ACCOUNT stays
    text = UNFAULTED_NEIGHBOUR.replace("{name: B, start: 0x11000, pages: 1, prot: rw}",
                                       "{name: B, start: 0x11000, pages: 1, prot: r, flags: [account]}")
    t = run(text.split("steps:")[0] + "steps:\n  - write: P/B\n", "split-counters")
    assert t.vma("P/B").anon_vma == t.vma("P/A").anon_vma == "AV1"


@pytest.mark.parametrize("path", sorted(ROOT.glob("scenarios/**/*.yaml")),
                         ids=lambda p: str(p.relative_to(ROOT / "scenarios")))
def test_every_shipped_expectation_holds(path: Path) -> None:
    from anondiff.expect import verify
    sc = load(str(path))
    finals = {name: replay(sc, name).final for name in policies.names() if accepts(sc, name)}
    failed = [f"line {v.expectation.line}: {v.expectation.kind} under {v.policy}: {v.message}"
              for v in verify(sc.expectations, finals) if not v.ok]
    assert not failed, "\n".join(failed)


MADVISE_WIPE = """
description: madvise(MADV_WIPEONFORK), then MADV_KEEPONFORK, on a faulted VMA.
processes:
  - name: P
    vmas:
      - {name: W, start: 0x12000, pages: 2, prot: rw, faulted: true}
steps:
  - {madvise: P, start: 0x90000, end: 0x91000, advice: ADVICE}
"""


@pytest.mark.parametrize("advice", ["wipeonfork", "keeponfork"])
@pytest.mark.parametrize("version,einval", [
    ("always-new", True), ("v3.10", True), ("v4.9", True), ("v4.13", True), ("v3.19", True),
    ("v4.14", False), ("degree", False), ("clone-rework-2026", False)])
def test_madvise_wipeonfork_before_v4_14_is_einval(advice: str, version: str, einval: bool,
                                                   tmp_path: Path) -> None:
    """madvise_behavior_valid() knows MADV_WIPEONFORK and MADV_KEEPONFORK since commit
    d2cd9ede6e19 ("mm,fork: introduce MADV_WIPEONFORK") (v4.14): before it the call fails with
    EINVAL, before the range is looked at (an unmapped range is ENOMEM from v4.14 on)."""
    path = tmp_path / "m.yaml"
    text = MADVISE_WIPE.replace("ADVICE", advice)
    path.write_text(text)
    r = invoke("run", str(path), "-p", version, "--final-only")
    assert r.exit_code == 2
    assert ("EINVAL" in r.stderr, "ENOMEM" in r.stderr) == (einval, not einval), r.stderr
    if einval:
        assert r.stderr.endswith(f"steps[0]: madvise(MADV_{advice.upper()}) under "
                                 f"{policies.get(version).name}: no such advice before v4.14, the kernel "
                                 "returns EINVAL\n"), r.stderr
    path.write_text(text.replace("start: 0x90000, end: 0x91000", "start: 0x12000, end: 0x13000"))
    r = invoke("run", str(path), "-p", version, "--final-only", "--format", "json")
    assert (r.exit_code == 2) == einval, r.output


def test_dup_mmap_asks_the_policy_first() -> None:
    """dup_mmap() runs its own loop unless the policy's ``_own_dup_mmap()`` (every Policy has
    one, False; a compiled kernel tree's runs the whole fork in C) says it did the fork."""
    base = type(policies.get("split-counters"))
    calls: list[tuple[str, str, dict[str, str] | None]] = []

    class Owns(base):  # type: ignore[misc, valid-type]
        def _own_dup_mmap(self, k, parent, child, rename):  # type: ignore[no-untyped-def]
            calls.append((parent.name, child.name, rename))
            return True     # (claims the fork and does nothing: the child stays empty)

    sc = loads(WIPE_FAULTED, "t.yaml")
    plain = replay(sc, base()).final
    assert [v.name for v in plain.process("C").vmas] == ["A", "W"]
    owned = replay(sc, Owns()).final
    assert calls == [("P", "C", None)]     # (no names given: each copy keeps its parent's)
    assert owned.process("C").vmas == ()
