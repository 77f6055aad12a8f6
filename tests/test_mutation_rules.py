"""Scenario tests that kill mutants of the kernel model and the policies (issue 12, make
mutation): each pins one kernel rule, with the kernel reason and the commit in its docstring."""
from __future__ import annotations

import pytest

from anondiff.kernel.objects import AnonVma, AnonVmaChain, Mm, Vma, VmaOp
from anondiff.kernel.state import Kernel
from anondiff.policies import get


def _vma(mm: Mm, name: str, start: int) -> Vma:
    return Vma(mm, start, start + 1, start, frozenset({"r", "w"}), frozenset(), None, name)


def _chain(vma: Vma, *avs: AnonVma) -> None:
    """vma's same_vma list, given head first."""
    vma.avcs = [AnonVmaChain(vma, av, 0) for av in reversed(avs)]


def _warnings(src_av: bool, src_chain: int, dst_av: str, dst_chain: int, op: VmaOp) -> list[str]:
    """check_anon_vma_clone() of clone-rework-2026 on a hand-built src/dst pair: the details
    of the VM_WARN_ON_ONCE events it raises, in order.  ``dst_av``: "none", "src" or "other"."""
    policy = get("clone-rework-2026")
    k = Kernel(policy)
    mm = Mm("P")
    src, dst = _vma(mm, "src", 0x10), _vma(mm, "dst", 0x20)
    a, b, other = AnonVma(), AnonVma(), AnonVma()
    src.anon_vma = a if src_av else None
    _chain(src, *[a, b][:src_chain])
    dst.anon_vma = {"none": None, "src": src.anon_vma, "other": other}[dst_av]
    _chain(dst, *[other][:dst_chain])
    policy.check_anon_vma_clone(k, dst, src, op)
    assert all(e.kind == "VM_WARN_ON_ONCE" and e.where is dst for e in k.events)
    return [e.detail.removeprefix("check_anon_vma_clone: ") for e in k.events]


SRC_NULL = "src without anon_vma has a chain or dst has an anon_vma"
DST_CHAIN = "dst chain not empty on entry"
DST_OTHER = "dst->anon_vma neither NULL nor src's"
NOT_SET = "dst->anon_vma not set for a non-fork clone"
MERGE = "merge of an unfaulted VMA from a non-singular chain"


@pytest.mark.parametrize("case, expected", [
    # the calls the kernel makes: no warning
    ((True, 2, "none", 0, VmaOp.FORK), []),
    ((True, 1, "src", 0, VmaOp.SPLIT), []),
    ((True, 2, "src", 0, VmaOp.REMAP), []),
    ((True, 1, "src", 0, VmaOp.MERGE_UNFAULTED), []),
    ((False, 0, "none", 0, VmaOp.SPLIT), []),
    ((False, 0, "none", 0, VmaOp.FORK), []),
    # each check alone
    ((False, 1, "none", 0, VmaOp.SPLIT), [SRC_NULL]),
    ((False, 0, "other", 0, VmaOp.FORK), [SRC_NULL, DST_OTHER]),
    ((True, 1, "src", 1, VmaOp.SPLIT), [DST_CHAIN]),
    ((True, 1, "other", 0, VmaOp.FORK), [DST_OTHER]),
    ((True, 1, "none", 0, VmaOp.SPLIT), [NOT_SET]),
    ((True, 1, "none", 0, VmaOp.REMAP), [NOT_SET]),
    ((True, 2, "src", 0, VmaOp.MERGE_UNFAULTED), [MERGE]),
    ((False, 0, "none", 0, VmaOp.MERGE_UNFAULTED), [MERGE]),
    # several at once, in the kernel's order
    ((True, 2, "none", 1, VmaOp.MERGE_UNFAULTED), [DST_CHAIN, NOT_SET, MERGE]),
])
def test_clone_rework_check_anon_vma_clone_warnings(case: tuple, expected: list[str]) -> None:
    """mm/rmap.c @ 0014dde7e945 check_anon_vma_clone() (Lorenzo Stoakes, "mm: clean up
    anon_vma implementation", 2026): VM_WARN_ON_ONCE(!src->anon_vma && !list_empty(&src->
    anon_vma_chain)) and VM_WARN_ON_ONCE(!src->anon_vma && dst->anon_vma) (one warning in the
    model); VM_WARN_ON_ONCE(!list_empty(&dst->anon_vma_chain));
    VM_WARN_ON_ONCE(dst->anon_vma && dst->anon_vma != src->anon_vma); VM_WARN_ON_ONCE(operation
    != VMA_OP_FORK && src->anon_vma && !dst->anon_vma); VM_WARN_ON_ONCE(operation ==
    VMA_OP_MERGE_UNFAULTED && !list_is_singular(&src->anon_vma_chain)).  Each fires on its own
    condition and on no other, under the text a user reads in the findings."""
    assert _warnings(*case) == expected


from anondiff.policies import UnknownPolicyError, release_table, resolve_version


@pytest.mark.parametrize("text, policy, backport", [
    ("v2.6.34-rc1", "always-new", None),   # commit 5beb49305251, v2.6.34-rc1: anon_vma_chain
    ("2.6.34", "always-new", None),
    ("v2.6.36-rc2", "always-new", None),
    ("v2.6.35.4", "always-new", "2.6.35.y took the backport of 7a3ef208e662"),
    ("v3.19-rc3", "always-new", None),     # commit 7a3ef208e662 came after v3.19-rc3
    ("v3.19-rc4", "v3.19", None),
    ("v4.8.5", "v3.19", None),             # 2555283eb40d went to 4.9+ stable only
    ("v4.9.1", "v3.19", "4.9.y took the backport of 2555283eb40d"),
    ("v4.13", "v3.19", None),
    ("v4.14-rc1", "degree", None),      # commit d2cd9ede6e19 ("mm,fork: introduce MADV_WIPEONFORK")
    ("v6.0-rc3", "v5.10", None),
    ("v6.1", "v6.1", None),                # commit 2555283eb40d, v6.0-rc4
    ("v6.12", "v6.12", None),              # commit 9b9143298585, v6.7-rc1
    ("v7.2", "clone-rework-2026", None),   # the newest release modelled
])
def test_kernel_version_resolves_to_its_era(text: str, policy: str, backport: str | None) -> None:
    """-p VERSION picks the rule of the release that version is in (spec section 10): the
    first version of each era is its commit's release (rc included), and a stable point
    release of a branch that took a backport says so."""
    cls, note = resolve_version(text)
    assert cls.name == policy
    assert note.startswith(f"{text}: policy {policy} ({cls.versions})")
    if backport is None:
        assert "backport of" not in note.partition(f"({cls.versions})")[2]
    else:
        assert f"; {backport} at a stable release not recorded here" in note
    doubt = "; the release of the 2025 merge fix (taken as v6.16) is unverified"
    cls, note = resolve_version("v6.16")
    assert note == f"v6.16: policy split-counters ({cls.versions}){doubt}"


@pytest.mark.parametrize("text, after", [
    ("v5.10.100", "v5.10-stable"),        # Debian bullseye's 5.10.223 = the v5.10-stable era
    ("v5.15.3", "split-counters"),
    ("v4.19.5", "split-counters"),
])
def test_a_backport_names_the_era_after_it(text: str, after: str) -> None:
    """A stable branch that took commit 2555283eb40d ("mm/rmap: Fix anon_vma->degree ambiguity
    leading to double-reuse") is sent, after that point release, to the era that models its
    own tree: 5.10.y to v5.10-stable (split counters around the 5.10 mm, checked against
    Debian's 5.10.223), the others to split-counters."""
    _, note = resolve_version(text)
    branch = text[1:].rpartition(".")[0]
    assert note.endswith(f"; {branch}.y took the backport of 2555283eb40d at a stable release "
                         f"not recorded here: after it, use -p {after}")


@pytest.mark.parametrize("text", ["v2.6", "v6.1.2-rc1", "v4.19.1.2", "v2.6.35.1-rc2"])
def test_not_a_kernel_version(text: str) -> None:
    """A 2.6 version needs its sublevel; an rc of a stable point release does not exist."""
    assert resolve_version(text) is None


def test_versions_outside_the_modelled_range() -> None:
    """Before v2.6.34 there is no anon_vma_chain (commit 5beb49305251); after v7.2 nothing
    is modelled."""
    with pytest.raises(UnknownPolicyError, match=r"'v2\.6\.33' \(before v2\.6\.34 there is"):
        resolve_version("v2.6.33")
    with pytest.raises(UnknownPolicyError, match=r"'v2\.6\.34-rc0' \(before v2\.6\.34"):
        resolve_version("v2.6.34-rc0")
    with pytest.raises(UnknownPolicyError,
                       match=r"'v7\.3' \(newer than the newest release modelled, v7\.2: "
                             r"clone-rework-2026\)"):
        resolve_version("v7.3")


def test_release_table() -> None:
    """``anondiff policies``: the first release of each era and its policy."""
    assert release_table() == [
        ("v2.6.34-rc1", "always-new", ""),
        ("v3.19-rc4", "v3.19", ""),
        ("v4.14-rc1", "degree", ""),
        ("v5.5-rc1", "wei-4e4a9eb92133", ""),
        ("v5.6-rc3", "v5.10", ""),
        ("v6.0-rc4", "v6.1", ""),
        ("v6.7-rc1", "v6.12", ""),
        ("v6.16-rc1", "split-counters",
         "the release of the 2025 merge fix (taken as v6.16) is unverified"),
        ("v7.0-rc1", "clone-rework-2026 (up to v7.2)", ""),
    ]


from anondiff.engine import replay
from anondiff.policies import ERA_VARIANTS, names
from anondiff.scenario import loads
from anondiff.topology import Topology

EVERY = names() + [c.name for c in ERA_VARIANTS]


def run(text: str, policy: str) -> Topology:
    return replay(loads(text, "mutation.yaml"), policy).final


def layout(t: Topology, proc: str = "P") -> list[tuple[int, int, str | None]]:
    return [(v.start, v.end, v.anon_vma) for v in t.process(proc).vmas]


# three adjacent private mappings, the middle one read-only; mprotect makes it rw again
THREE = """
description: prev and next around a read-only middle
processes:
  - name: P
    vmas:
      - {name: A, start: 0x10000, pages: 1, prot: rw%s}
      - {name: B, start: 0x11000, pages: 1, prot: r}
      - {name: C, start: 0x12000, pages: 1, prot: rw%s}
steps:
  - {mprotect: P/B, prot: rw}
"""


@pytest.mark.parametrize("policy", EVERY)
def test_merge_of_prev_middle_next_with_one_anon_vma(policy: str) -> None:
    """vma_merge() case 1 (v4.19 mm/mmap.c; vma_merge_existing_range() in 6.x): prev, the
    middle and next merge into prev when prev's and next's anon_vmas are compatible, which
    is_mergeable_anon_vma(prev->anon_vma, next->anon_vma) allows when one is NULL: A (faulted)
    takes B and C (never faulted) whole."""
    t = run(THREE % (", faulted: [0]", ""), policy)
    assert layout(t) == [(0x10000, 0x13000, "AV1")]


@pytest.mark.parametrize("policy", EVERY)
def test_merge_of_prev_middle_next_with_two_anon_vmas(policy: str) -> None:
    """The same mprotect when prev and next have different anon_vmas: is_mergeable_anon_vma()
    refuses prev+next (vma_merge() case 1 needs both compatible), so only prev takes the
    middle (case 2/5 in v4.19's numbering) and next stays, with its own anon_vma; no
    anon_vma_merge() VM_BUG_ON."""
    t = run(THREE % (", faulted: [0]", ", faulted: [0]"), policy)
    assert layout(t) == [(0x10000, 0x12000, "AV1"), (0x12000, 0x13000, "AV2")]
    assert not [f for f in t.findings if f.kind.startswith("VM_")]


# -- a user's policy file (-p FILE.py): one line naming the file, the line and the error -------

from anondiff.policies import explain, get as get_policy, user_error


def _policy_file(tmp_path, body: str, name: str = "mine.py") -> str:
    path = tmp_path / name
    path.write_text("from anondiff.policies.split_counters import SplitCountersPolicy\n" + body)
    return str(path)


def _load_error(path: str) -> str:
    with pytest.raises(UnknownPolicyError) as e:
        get_policy(path)
    return str(e.value)


def test_policy_file_missing(tmp_path) -> None:
    """-p nowhere.py: the file is named, nothing else is tried."""
    path = str(tmp_path / "nowhere.py")
    assert _load_error(path) == f"{path}: no such policy file"


def test_policy_file_syntax_error(tmp_path) -> None:
    path = _policy_file(tmp_path, "class P(SplitCountersPolicy:\n    name = 'p'\n")
    assert _load_error(path).startswith(f"{path}:2: cannot load policy: SyntaxError: ")


def test_policy_file_raises_at_import(tmp_path) -> None:
    path = _policy_file(tmp_path, "x = 1\nraise ValueError('boom')\n")
    assert _load_error(path) == f"{path}:3: cannot load policy: ValueError: boom"


def test_policy_file_exits_at_import(tmp_path) -> None:
    path = _policy_file(tmp_path, "import sys\nsys.exit(3)\n")
    assert _load_error(path) == f"{path}:3: cannot load policy: called sys.exit(3)"


def test_policy_file_without_its_own_name(tmp_path) -> None:
    """A subclass that sets no 'name' would show under its base class's: refused, naming it."""
    path = _policy_file(tmp_path, "class Mine(SplitCountersPolicy):\n    pass\n")
    assert _load_error(path) == (
        f"{path}: expected exactly one Policy subclass setting its own 'name', found 0 (Mine "
        "must set its own 'name'; it would otherwise show under its base class's)")
    path = _policy_file(tmp_path, "class A(SplitCountersPolicy):\n    name = 'a'\n"
                        "class B(SplitCountersPolicy):\n    name = 'b'\n", "two.py")
    assert _load_error(path) == (f"{path}: expected exactly one Policy subclass setting its "
                                 "own 'name', found 2")
    path = _policy_file(tmp_path, "class A(SplitCountersPolicy):\n    pass\n"
                        "class B(SplitCountersPolicy):\n    pass\n", "two_unnamed.py")
    assert _load_error(path) == (
        f"{path}: expected exactly one Policy subclass setting its own 'name', found 0 (A, B "
        "must set its own 'name'; it would otherwise show under its base class's)")
    path = _policy_file(tmp_path, "class A(SplitCountersPolicy):\n    name = 'a'\n"
                        "class B(SplitCountersPolicy):\n    name = 'b'\n"
                        "class C(SplitCountersPolicy):\n    pass\n", "mixed.py")
    assert _load_error(path).endswith("own 'name', found 2")
    path = _policy_file(tmp_path, "x = 1\n", "none.py")
    assert _load_error(path) == (f"{path}: expected exactly one Policy subclass setting its "
                                 "own 'name', found 0")


def test_policy_file_name_taken(tmp_path) -> None:
    path = _policy_file(tmp_path, "class Mine(SplitCountersPolicy):\n    name = 'degree'\n")
    assert _load_error(path) == (f"{path}: Mine.name 'degree' is taken by the built-in policy "
                                 "degree: choose another name")


def test_policy_file_constructor_fails(tmp_path) -> None:
    """An exception without a message shows as its type alone."""
    path = _policy_file(tmp_path, "class Mine(SplitCountersPolicy):\n    name = 'mine'\n"
                        "    def __init__(self):\n        raise RuntimeError\n")
    assert _load_error(path) == f"{path}:5: cannot create the policy: RuntimeError"


def test_policy_file_error_later_names_the_file_and_line(tmp_path) -> None:
    """An error raised later inside a loaded policy file (user_error() without a path) names
    the file as given and the innermost line of it; an error from elsewhere names no line."""
    path = _policy_file(tmp_path, "class Mine(SplitCountersPolicy):\n    name = 'mine2'\n"
                        "    def boom(self):\n        raise RecursionError('deep')\n")
    p = get_policy(path)
    try:
        p.boom()
    except RecursionError as e:
        assert user_error(e) == f"{path}:5: policy failed: RecursionError: recursion too deep"
        assert user_error(e, "other.py", "x") == f"{path}:5: x: RecursionError: recursion too deep"
    assert user_error(KeyError()) == "<policy>: policy failed: KeyError"
    assert user_error(KeyError(), "f.py") == "f.py: policy failed: KeyError"


def test_explain_says_what_a_version_resolved_to() -> None:
    """Only a kernel version gets a resolution line; names, aliases and files do not."""
    assert explain("v6.2") == resolve_version("v6.2")[1] != resolve_version("v6.2.1")[1]
    assert explain("v6.1") is None                # the era variant's own name
    assert explain("degree") is None and explain("v7.0") is None
    assert explain("x.py") is None and explain("nonsense") is None


# -- anondiff explain: the reuse predicate says which of its conditions failed ---------------

from pathlib import Path

from anondiff.explain.core import explain as explain_replay, render
from anondiff.scenario import load

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"


@pytest.mark.parametrize("policy, verdict", [("split-counters", "false"),
                                             ("clone-rework-2026", "no change")])
def test_explain_names_the_failed_reuse_condition(policy: str, verdict: str) -> None:
    """commit 2555283eb40d ("mm/rmap: Fix anon_vma->degree ambiguity leading to double-reuse"):
    anon_vma_clone() reuses an anon_vma only if !anon_vma->num_active_vmas &&
    anon_vma->num_children < 2 (maybe_reuse_anon_vma() in the 2026 rework); explain says
    which of the two failed, and only those."""
    text = "\n".join(render(explain_replay(load(str(SCENARIOS / name)), policy), width=1000)
                     for name in ("endless-growth.yaml", "cve-2022-42703.yaml"))
    for counters, outcome in [
            ("0 and num_children 0", "reused"),
            ("0 and num_children 1", "reused"),
            ("0 and num_children 2", f"not reused: num_children >= 2 => {verdict}"),
            ("1 and num_children 1", f"not reused: num_active_vmas != 0 => {verdict}"),
            ("1 and num_children 2",
             f"not reused: num_active_vmas != 0 and num_children >= 2 => {verdict}")]:
        assert f" has num_active_vmas {counters} -> {outcome}" in text, (counters, outcome)
    assert "src->anon_vma is NULL: a copy, never a reuse" not in text


def test_explain_v1_says_why_the_child_prev_was_not_shared() -> None:
    """Konstantin Khlebnikov's v1 (<157830736034.8148.7070851958306750616.stgit@buzz>) shares
    the child prev's anon_vma only when the parent's prev shares pvma->anon_vma and starts where
    the child's prev does; explain names the condition that failed first."""
    def text(name: str) -> str:
        return render(explain_replay(load(str(SCENARIOS / name)), "v1"), width=1000)
    sharers = text("file-between-sharers.yaml")
    assert "no pprev" in sharers and "no prev" not in sharers
    assert "pprev P/LIB uses NULL, not pvma->anon_vma AV0" in sharers
    assert "start apart" not in sharers
    first = text("dontcopy-first.yaml")
    assert "no prev" in first and "no pprev" not in first


from anondiff.kernel.rmap import anon_vma_chain_assign, interval_tree_insert


def test_interval_tree_insert_into_a_freed_anon_vma_is_a_uaf_naming_it() -> None:
    """anon_vma_clone() of the 2026 rework (mm/rmap.c @ 0014dde7e945) assigns the chains first
    and inserts them into the interval trees in a second pass (anon_vma_interval_tree_insert()):
    an insert into a freed anon_vma writes freed memory, reported as a UAF on the VMA naming
    the anon_vma; an anon_vma never linked before gets its name on that first insert."""
    k = Kernel(get("clone-rework-2026"))
    vma = _vma(Mm("P"), "A", 0x10)
    freed, fresh = AnonVma(), AnonVma()
    k.name(freed, "AV7")
    freed.freed = True
    for av in (freed, fresh):
        interval_tree_insert(k, anon_vma_chain_assign(k, vma, av))
    assert [(e.kind, e.where, e.detail) for e in k.events] == [
        ("UAF", vma, "anon_vma_interval_tree_insert into freed AV7")]
    assert fresh.name == "AV1" and list(fresh.tree) == [vma.avcs[-1]]
    assert [avc.seq for avc in vma.same_vma()] == [2, 1]


from anondiff.kernel.rmap import avname
from anondiff.scenario import loads as loads_text

from .test_kernel_rules import FORKED_SOURCE, FORKED_TARGET as FORKED_TARGET_EXPLAIN


def test_explain_case_1_names_the_fork_child_and_its_chain() -> None:
    """The 2025 three-case rule, case 1 (mm/vma.c, "mm/vma: fix incorrectly disallowed
    anonymous VMA merges"): an unfaulted target may import the source's anon_vma unless the
    source is a fork child; in merge.c's forked_source_vma the source C/ptr is one, and
    explain gives the length of its chain."""
    text = render(explain_replay(loads_text(FORKED_SOURCE, "forked_source.yaml"),
                                 "split-counters"), width=1000)
    assert ("is_mergeable_anon_vma(C/ptr, C/ptr2): case 1, C/ptr2 imports AV2: source a fork "
            "child (chain of 2) -> refused => false") in text


def test_anon_vma_names_in_findings() -> None:
    """A finding names an anon_vma by its label, NULL for none, (unnamed) for one never
    linked (the kernel's pointer has no label)."""
    assert avname(None) == "NULL"
    assert avname(AnonVma()) == "(unnamed)"
    av = AnonVma()
    av.name = "AV3"
    assert avname(av) == "AV3"


# -- vma_merge_new_range() for an mmap next to existing VMAs ----------------------------------

HOLE = """
description: an mmap into the hole between two VMAs
processes:
  - name: P
    vmas:
      - {name: A, start: 0x10000, pages: 1, prot: rw%s}
      - {name: C, start: 0x12000, pages: 1, prot: rw%s}
steps:
  - {mmap: P, name: B, start: 0x11000, pages: 1, prot: rw}
"""


@pytest.mark.parametrize("policy", EVERY)
def test_mmap_filling_a_hole_merges_prev_new_and_next(policy: str) -> None:
    """vma_merge_new_range() (mm/vma.c; vma_merge() case 1 in v4.19): a new mapping that
    touches a compatible prev and next merges all three into prev, which imports next's
    anon_vma when it has none (dup_anon_vma()); next's range goes to prev."""
    t = run(HOLE % ("", ", faulted: [0]"), policy)
    assert layout(t) == [(0x10000, 0x13000, "AV1")]
    assert not [f for f in t.findings if f.kind.startswith(("VM_", "I", "UAF"))]


@pytest.mark.parametrize("policy", EVERY)
def test_mmap_between_two_anon_vmas_merges_with_prev_only(policy: str) -> None:
    """prev and next with different anon_vmas cannot both merge (is_mergeable_anon_vma() of
    the two): the new range joins prev (vma_merge() tries the left side first), next stays."""
    t = run(HOLE % (", faulted: [0]", ", faulted: [0]"), policy)
    assert layout(t) == [(0x10000, 0x12000, "AV1"), (0x12000, 0x13000, "AV2")]


@pytest.mark.parametrize("policy", EVERY)
@pytest.mark.parametrize("start, expected", [
    (0x11000, [(0x10000, 0x12000, "AV1"), (0x20000, 0x21000, None)]),   # prev expands up
    (0x1f000, [(0x10000, 0x11000, "AV1"), (0x1f000, 0x21000, None)]),   # next expands down
    (0x18000, [(0x10000, 0x11000, "AV1"), (0x18000, 0x19000, None),
               (0x20000, 0x21000, None)]),                              # touches neither
])
def test_mmap_next_to_one_vma(policy: str, start: int, expected: list) -> None:
    """A new anonymous mapping right after prev extends prev (vma_expand()); right below next,
    next starts lower (its pgoff follows); touching neither, it is a VMA of its own."""
    text = f"""
description: an mmap next to one VMA
processes:
  - name: P
    vmas:
      - {{name: A, start: 0x10000, pages: 1, prot: rw, faulted: [0]}}
      - {{name: C, start: 0x20000, pages: 1, prot: rw}}
steps:
  - {{mmap: P, name: B, start: {start:#x}, pages: 1, prot: rw}}
"""
    t = run(text, policy)
    assert layout(t) == expected
    # an anonymous VMA's pgoff is its address >> PAGE_SHIFT, kept when next expands downward
    assert [v.pgoff for v in t.process("P").vmas] == [s >> 12 for s, _, _ in expected]


TWO = """
description: two faulted neighbours, the second read-only, made rw again
processes:
  - name: P
    vmas:
      - {name: A, start: 0x10000, pages: 1, prot: rw, faulted: [0]}
      - {name: B, start: 0x11000, pages: 1, prot: r, faulted: [0]}
steps:
  - {mprotect: P/B, prot: rw}
"""


@pytest.mark.parametrize("policy", EVERY)
def test_two_anon_vmas_never_merge(policy: str) -> None:
    """is_mergeable_anon_vma() (commit 965f55dea0e3 and every later form): two VMAs with
    different anon_vmas do not merge, even when the target's chain is singular."""
    t = run(TWO, policy)
    assert layout(t) == [(0x10000, 0x11000, "AV1"), (0x11000, 0x12000, "AV2")]


@pytest.mark.parametrize("policy, fragment", [
    ("v6.1", "both anon_vmas NULL -> merge"),
    ("v6.1", "one anon_vma is NULL but C/ptr's chain has 2 entries, not 1 -> refused"),
    ("v6.1", "AV2 != AV1 -> refused"),
    ("v6.1", "src->anon_vma is NULL and P/A's chain is singular -> merge"),
])
def test_explain_the_pre_2025_merge_rule(policy: str, fragment: str) -> None:
    """commit 965f55dea0e3 ("mmap: avoid merging cloned VMAs"): explain says which branch of
    is_mergeable_anon_vma() decided."""
    texts = [render(explain_replay(loads_text(doc, "m.yaml"), policy), width=1000)
             for doc in (FORKED_TARGET_EXPLAIN, TWO, HOLE % ("", ""), HOLE % (", faulted: [0]", ""))]
    assert any(fragment in t for t in texts), fragment


from anondiff.kernel.merge import remove_merged
from anondiff.kernel.rmap import put_anon_vma


def test_anon_vma_merge_of_different_anon_vmas_is_a_vm_bug_on() -> None:
    """anon_vma_merge() (mm/rmap.h, up to 6.x): VM_BUG_ON_VMA(vma->anon_vma !=
    next->anon_vma, vma) before the removed VMA's chain is unlinked; the finding names both
    anon_vmas and the VMA that goes."""
    k = Kernel(get("v6.1"))
    mm = Mm("P")
    kept, gone = _vma(mm, "A", 0x10), _vma(mm, "B", 0x11)
    mm.insert(kept)
    mm.insert(gone)
    kept.anon_vma, gone.anon_vma = AnonVma(), AnonVma()
    k.name(kept.anon_vma, "AV1")
    k.name(gone.anon_vma, "AV2")
    remove_merged(k, kept, gone)
    assert [(e.kind, e.where, e.detail) for e in k.events] == [
        ("VM_BUG_ON", "P/A", "anon_vma_merge: AV1 != AV2 of B")]
    assert mm.vmas == [kept]


def test_put_anon_vma_of_a_freed_anon_vma_is_a_uaf() -> None:
    """put_anon_vma() on a freed anon_vma decrements freed memory: a UAF naming it, and
    nothing else happens (no second free, the root's reference stays)."""
    k = Kernel(get("split-counters"))
    root, child = AnonVma(), AnonVma()
    k.name(root, "AV1")
    k.name(child, "AV2")
    child.root = root
    root.refcount = 2
    child.freed = True
    put_anon_vma(k, child)
    assert [(e.kind, e.where, e.detail) for e in k.events] == [
        ("UAF", "AV2", "put_anon_vma on a freed anon_vma")]
    assert root.refcount == 2 and not root.freed
    child.freed = False
    put_anon_vma(k, child)           # the last reference: freed, and the root's dropped
    assert child.freed and root.refcount == 1 and not root.freed and len(k.events) == 1
    other = AnonVma()
    k.name(other, "AV3")
    other.root = root
    put_anon_vma(k, other)           # __put_anon_vma(): the root's last reference goes too
    assert other.freed and root.freed and root.refcount == 0 and len(k.events) == 1


ACCOUNT = """
description: a writable private VMA without VM_ACCOUNT made rwx, then rw again
processes:
  - name: P
    vmas:
      - {name: A, start: 0x10000, pages: 1, prot: rw}
      - {name: B, start: 0x11000, pages: 1, prot: rw}
steps:
  - {setflags: P/B, clear: [account]}
  - {mprotect: P/B, prot: rwx}
  - {mprotect: P/B, prot: rw}
"""


@pytest.mark.parametrize("policy", EVERY)
def test_mprotect_charges_only_a_vma_turning_writable(policy: str) -> None:
    """mprotect_fixup() (mm/mprotect.c): newflags |= VM_ACCOUNT only when the VMA was not
    writable before (!(oldflags & (VM_ACCOUNT|VM_WRITE|VM_HUGETLB|VM_SHARED|VM_NORESERVE))).
    B, writable but not accounted, stays unaccounted through rw -> rwx -> rw, so it never
    merges with the accounted A (vma_merge() compares VM_ACCOUNT)."""
    t = run(ACCOUNT, policy)
    assert [(v.start, v.end) for v in t.process("P").vmas] == [(0x10000, 0x11000), (0x11000, 0x12000)]


def test_explain_degree_never_reuses_the_source_anon_vma() -> None:
    """commit 7a3ef208e662 ("mm: prevent endless growth of anon_vma hierarchy"): anon_vma_clone()
    skips src->anon_vma itself (anon_vma != src->anon_vma && anon_vma->degree < 2); explain
    says so rather than quoting its degree."""
    text = render(explain_replay(load(str(SCENARIOS / "seed-thread.yaml")), "degree"), width=1000)
    assert "AV0 is src->anon_vma -> not reused" in text
    assert "AV0 has degree" not in text


# -- the step semantics of brk(), the stack and madvise() ----------------------------------------

from anondiff.engine import ReplayError


def _run1(vmas: str, steps: str, policy: str = "split-counters") -> Topology:
    return replay(loads("description: x\nprocesses:\n  - name: P\n    vmas:\n" + vmas
                        + "steps:\n" + steps, "x.yaml"), policy).final


def _layout(t: Topology, proc: str = "P") -> list[tuple[str, int, int]]:
    return [(v.name, v.start, v.end) for v in t.process(proc).vmas]


LIB = "      - {name: lib, start: 0x10000, pages: 1, file: lib}\n"


@pytest.mark.parametrize("policy", ["always-new", "degree", "split-counters", "clone-rework-2026"])
def test_brk_into_empty_space_makes_heaps_named_in_turn(policy: str) -> None:
    """sys_brk() with no VMA ending at the old break: do_brk_flags() makes a new anonymous VMA
    (read-write, VM_ACCOUNT) for [oldbrk, newbrk); each gets a name no other VMA of the mm has
    (heap, heap.1, heap.2 ... in the order they are made, wherever they lie: an existing VMA
    is never renamed), and it is a VMA of its mm like any other: written, then forked, the
    heap gets its own anon_vma and the child's copy links to it."""
    steps = "".join(f"  - {{brk: P, from: {a:#x}, to: {a + 0x1000:#x}}}\n"
                    for a in (0x40000, 0x20000, 0x30000))
    t = _run1(LIB, steps + "  - {write: P/heap.2, pages: all}\n  - {fork: P, child: C}\n",
              policy)
    assert _layout(t) == [("lib", 0x10000, 0x11000), ("heap.1", 0x20000, 0x21000),
                          ("heap.2", 0x30000, 0x31000), ("heap", 0x40000, 0x41000)]
    h = t.vma("P/heap.2")
    assert (h.prot, h.anon_vma is not None) == (("read", "write"), True)
    assert t.vma("C/heap.2").chain[-1] == h.anon_vma and len(t.vma("C/heap.2").pages) == 1


def test_brk_name_taken_is_refused() -> None:
    """A brk step's name must be free in the mm, as for mmap and split (bad input: a one-line
    error, nothing replayed past it)."""
    with pytest.raises(ReplayError, match=r"brk: P already has a VMA named 'lib'$"):
        _run1(LIB, "  - {brk: P, from: 0x20000, to: 0x21000, name: lib}\n")


def test_brk_to_the_same_break_changes_nothing() -> None:
    """sys_brk(): ``if (brk <= mm->brk)`` shrinks (do_vmi_munmap of an empty range when equal):
    no VMA is made for an empty range."""
    t = _run1(LIB, "  - {brk: P, from: 0x20000, to: 0x20000}\n")
    assert _layout(t) == [("lib", 0x10000, 0x11000)]


def test_brk_grows_a_one_page_heap() -> None:
    """do_brk_flags() extends the VMA that ends at the old break (vma = vma_prev(); here one
    page long) instead of making a second one."""
    t = _run1("      - {name: heap, start: 0x20000, pages: 1}\n",
              "  - {brk: P, from: 0x21000, to: 0x23000}\n")
    assert _layout(t) == [("heap", 0x20000, 0x23000)]


def test_brk_next_to_a_vma_says_what_brk_returns() -> None:
    """sys_brk(): ``if (next && newbrk + PAGE_SIZE > vm_start_gap(next)) goto out;`` - the
    break stays where it was; the one-line error says so."""
    with pytest.raises(ReplayError) as e:
        _run1("      - {name: heap, start: 0x20000, pages: 1}\n"
              "      - {name: lib, start: 0x23000, pages: 1, file: lib}\n",
              "  - {brk: P, from: 0x21000, to: 0x23000}\n")
    assert str(e.value).endswith("brk: the new break leaves no page before lib: brk() returns "
                                 "the old break"), str(e.value)


STACK = "      - {name: stack, start: 0x7ff000000, pages: 2, flags: [growsdown]}\n"


def test_stack_grows_to_touch_an_inaccessible_vma() -> None:
    """expand_downwards(): the stack guard gap is kept only from an accessible VMA
    (``if (!(prev->vm_flags & VM_GROWSDOWN) && vma_is_accessible(prev))``); a PROT_NONE one
    right below may be touched: a write at the page where it ends grows the stack down to it."""
    t = _run1("      - {name: guard, start: 0x7feffe000, pages: 1, prot: none}\n" + STACK,
              "  - {write: P, addr: 0x7fefff000}\n")
    assert _layout(t) == [("guard", 0x7feffe000, 0x7fefff000), ("stack", 0x7fefff000, 0x7ff002000)]


def test_stack_guard_gap_is_exactly_256_pages() -> None:
    """stack_guard_gap (256 pages since v4.12, commit 1be7107fbe18 ("mm: larger stack guard
    gap, between vmas")): expand_downwards() refuses when ``address - prev->vm_end <
    stack_guard_gap``, so a fault exactly 256 pages above an accessible VMA grows the stack and
    one page lower does not, with a one-line error naming that VMA and the gap."""
    lib = "      - {name: lib, start: 0x7fee00000, pages: 1, file: lib}\n"
    t = _run1(lib + STACK, "  - {write: P, addr: 0x7fef01000}\n")
    assert t.vma("P/stack").start == 0x7fef01000
    with pytest.raises(ReplayError) as e:
        _run1(lib + STACK, "  - {write: P, addr: 0x7fef00000}\n")
    assert str(e.value) == ("x.yaml:8: steps[0]: the stack P/stack cannot grow down to "
                            "0x7fef00000 (lib is within the stack guard gap (256 pages)): the "
                            "kernel would send SIGSEGV")


def test_madvise_over_a_hole_is_enomem() -> None:
    """madvise_walk_vmas(): a range not fully mapped returns -ENOMEM ("unmapped_error"); the
    engine refuses such a step, naming the first unmapped address and the errno, whether the
    range is given by address or inside a VMA."""
    vmas = ("      - {name: a, start: 0x10000, pages: 2}\n"
            "      - {name: b, start: 0x13000, pages: 1}\n")
    with pytest.raises(ReplayError) as e:
        _run1(vmas, "  - {madvise: P, start: 0x10000, end: 0x14000, advice: dontfork}\n")
    assert str(e.value).endswith("madvise: 0x12000 in the range is not mapped in P: the kernel "
                                 "returns ENOMEM"), str(e.value)
    t = _run1(vmas, "  - {madvise: P, start: 0x11000, end: 0x12000, advice: dontfork}\n")
    assert [(v.name, "dontcopy" in v.flags) for v in t.process("P").vmas] == [
        ("a", False), ("a.1", True), ("b", False)]
    with pytest.raises(ReplayError) as e:
        _run1(vmas, "  - {madvise: P/a, offset: 1, pages: 2, advice: dontfork}\n")
    assert str(e.value).endswith("madvise: pages [1, 3) are not inside P/a (2 pages)"), \
        str(e.value)


def test_madvise_wipeonfork_on_a_file_mapping_is_einval() -> None:
    """madvise_behavior_valid()/madvise_vma_behavior(): MADV_WIPEONFORK on a file or shared
    mapping returns -EINVAL (``if (vma->vm_file || vma->vm_flags & VM_SHARED)``)."""
    with pytest.raises(ReplayError) as e:
        _run1(LIB, "  - {madvise: P/lib, advice: wipeonfork}\n")
    assert str(e.value).endswith("madvise(MADV_WIPEONFORK) on P/lib, a file or shared mapping: "
                                 "the kernel returns EINVAL"), str(e.value)


def test_brk_keeps_the_stack_guard_gap_below_a_stack() -> None:
    """sys_brk(): ``if (next && newbrk + PAGE_SIZE > vm_start_gap(next))`` with vm_start_gap()
    of a VM_GROWSDOWN next being vm_start - stack_guard_gap: the break may come up to 256
    pages and one below the stack, not one page closer."""
    low = 0x7ff000000 - (257 << 12)
    t = _run1(STACK, f"  - {{brk: P, from: {low - 0x1000:#x}, to: {low:#x}}}\n")
    assert _layout(t)[0] == ("heap", low - 0x1000, low)
    with pytest.raises(ReplayError, match="brk: the new break leaves no page before stack"):
        _run1(STACK, f"  - {{brk: P, from: {low - 0x1000:#x}, to: {low + 0x1000:#x}}}\n")


def test_stack_expansion_reuses_the_anon_vma_of_the_vma_above() -> None:
    """expand_downwards() first runs anon_vma_prepare() on the stack, and
    find_mergeable_anon_vma() looks at both neighbours: a compatible VMA right above (same
    flags, pgoff linear) whose anon_vma has a singular chain lends it."""
    vmas = ("      - {name: s1, start: 0x7ff000000, pages: 2, flags: [growsdown]}\n"
            "      - {name: s2, start: 0x7ff002000, pages: 1, flags: [growsdown], faulted: true}\n")
    t = _run1(vmas, "  - {write: P, addr: 0x7fefff000}\n")
    s1, s2 = t.vma("P/s1"), t.vma("P/s2")
    assert s1.start == 0x7fefff000 and s1.anon_vma == s2.anon_vma is not None


@pytest.mark.parametrize("step, message", [
    ("{mremap: P/a, new_pages: 2, flags: [maymove], to: 0x11000}",
     "mremap: the destination overlaps b, which get_unmapped_area() would never return: the "
     "kernel returns EINVAL"),
    ("{mremap: P/io, new_pages: 2}",
     "mremap: io is VM_SPECIAL: vma_merge() will not extend it: the kernel returns ENOMEM"),
])
def test_mremap_refusals_name_the_errno(step: str, message: str) -> None:
    """do_mremap(): a destination the caller says get_unmapped_area() returned cannot be mapped
    (the model refuses: EINVAL), and vma_merge_extend() never extends a VM_SPECIAL VMA
    (-ENOMEM); each is a one-line error with the errno mremap() returns."""
    vmas = ("      - {name: a, start: 0x10000, pages: 1}\n"
            "      - {name: b, start: 0x11000, pages: 1, file: lib}\n"
            "      - {name: io, start: 0x30000, pages: 1, flags: [io]}\n")
    with pytest.raises(ReplayError) as e:
        _run1(vmas, f"  - {step}\n")
    assert str(e.value).endswith(message), str(e.value)


def test_mremap_growing_up_to_a_vma_it_cannot_merge_with() -> None:
    """vma_merge_extend(): the VMA grows over the free range up to an incompatible next (a file
    mapping) without merging it: no MERGED finding, two VMAs."""
    t = _run1("      - {name: a, start: 0x10000, pages: 1}\n" + LIB.replace("0x10000", "0x12000"),
              "  - {mremap: P/a, new_pages: 2}\n")
    assert _layout(t) == [("a", 0x10000, 0x12000), ("lib", 0x12000, 0x13000)]
    assert [f.kind for f in t.findings] == []


def test_batch_replays_take_policies_and_skip_snapshots(monkeypatch: pytest.MonkeyPatch) -> None:
    """replay_many()/findings_many() take Policy objects as well as names, and
    ``snapshots=False`` gives what replay() gives without the snapshot steps."""
    from pathlib import Path

    from anondiff.engine import findings_many, replay_many
    monkeypatch.chdir(Path(__file__).resolve().parent.parent)
    sc = load("scenarios/cve-2022-42703.yaml")
    policies = [get_policy("degree"), get_policy("split-counters")]
    got = list(replay_many([sc], policies, snapshots=False))
    assert got == [replay(sc, p, snapshots=False) for p in policies]
    assert [len(r.snapshots) for r in got] == [1, 1] and len(replay(sc, "degree").snapshots) > 1
    assert [o.findings for o in findings_many([sc], policies)] == [r.final.findings for r in got]


@pytest.mark.parametrize("nth", [2, 3])
def test_clone_rework_failed_fork_adds_to_the_transient_anon_vmas(nth: int) -> None:
    """mm/rmap.c@7.2.13 anon_vma_fork(): the anon_vma is preallocated; when its chain's
    allocation (nth 2) or anon_vma_clone() (nth 3) fails, put_anon_vma() frees it unlinked.
    The JSON output's count of such anon_vmas grows by one over those already put (here two,
    from G1's fork reusing an ancestor once C exited)."""
    from .test_enomem import run as enomem_run
    before = "  - {fork: C, child: G1}\n  - {exit: C}\n  - {fork: G1, child: G2}\n"
    base = enomem_run(before, "clone-rework-2026").transient_anon_vmas
    t = enomem_run(before + f"  - {{fork: G1, child: G3, enomem: {nth}}}\n", "clone-rework-2026")
    assert (base, t.transient_anon_vmas) == (2, 3)


@pytest.mark.parametrize("above", ["", "      - {name: far, start: 0x80000, pages: 1}\n"])
@pytest.mark.parametrize("oldbrk", [0x20000, 0x21000])
def test_brk_from_inside_a_vma_is_refused(above: str, oldbrk: int) -> None:
    """sys_brk(): ``vma_find(&vmi, newbrk + PAGE_SIZE + stack_guard_gap)`` from the old break
    finds the VMA that contains it, and brk() returns the old break: the step is refused with
    a one-line error naming that VMA, whether the old break is its start or inside it and
    whatever lies further up (the VMA after it, ``far``, is not the one in the way).  Found
    twice: by a mutant of expand.brk() (the model inserted [0x21000, 0x24000) over a's
    [0x20000, 0x23000): two overlapping VMAs, no finding) and by anondiff live on 6.18 (fixed
    in anondiff/kernel/expand.py brk())."""
    with pytest.raises(ReplayError, match="brk: the new break leaves no page before a: "):
        _run1("      - {name: a, start: 0x20000, pages: 3}\n" + above,
              f"  - {{brk: P, from: {oldbrk:#x}, to: 0x24000}}\n")


def test_mremap_growing_in_place_fails_with_enomem_when_the_merge_cannot_allocate() -> None:
    """do_mremap(): ``vma = vma_merge_extend(&vmi, vma, delta); if (!vma) { ret = -ENOMEM;
    goto out; }``: growing a (no anon_vma) up to b (faulted) merges b into it, which needs
    anon_vma_clone() of b's chain into a; when that allocation fails nothing changes and
    mremap() returns -ENOMEM (a NOTE, not an error of the scenario)."""
    vmas = ("      - {name: a, start: 0x10000, pages: 1}\n"
            "      - {name: b, start: 0x12000, pages: 1, faulted: true}\n")
    t = _run1(vmas, "  - {mremap: P/a, new_pages: 2, enomem: 1}\n")
    assert _layout(t) == [("a", 0x10000, 0x11000), ("b", 0x12000, 0x13000)]
    assert t.findings[-1].detail == ("enomem: allocation 1 of the step (anon_vma_chain in "
                                     "anon_vma_clone()) fails: mremap() returns -ENOMEM")
    t = _run1(vmas, "  - {mremap: P/a, new_pages: 2}\n")
    assert _layout(t) == [("a", 0x10000, 0x13000)]


# -- dup_mmap()'s end of loop in bulk (a compiled tree's fork) -----------------------------------

from anondiff.kernel.fork import child_takes, children_take
from anondiff.kernel.objects import VM_WIPEONFORK, Page

RW = frozenset({"read", "write"})


def _parent() -> tuple[Mm, list[Vma], list[bool]]:
    """A parent with, in address order: a faulted one-page VMA, a faulted four-page VMA with
    pages at its first and third page, a VM_WIPEONFORK one with a page, one never faulted, and
    a one-page VMA with an anon_vma whose page is not mapped (zapped), and a faulted two-page
    VMA with both pages after them; the copies dup_mmap()
    made of each (anon_vma_fork() leaves the parent's anon_vma in them) and which are wiped."""
    mm, av = Mm("P"), AnonVma()
    layout = [(0x10, 0x11, True, (0x10,), False), (0x20, 0x24, True, (0x20, 0x22), False),
              (0x30, 0x31, True, (0x30,), True), (0x40, 0x42, False, (), False),
              (0x50, 0x51, True, (), False), (0x60, 0x62, True, (0x60, 0x61), False)]
    wipes = []
    for start, end, faulted, pages, wipe in layout:
        v = Vma(mm, start, end, start, RW, frozenset({VM_WIPEONFORK} if wipe else ()), None,
                f"v{start:x}")
        if faulted:
            v.anon_vma = av
            v.avcs = [AnonVmaChain(v, av, 0)]
        for p in pages:
            mm.ptes[p] = Page(av, p, f"p{p:x}")
        mm.append(v)
        wipes.append(wipe)
    return mm, mm.vmas, wipes


def _copies(parent: Mm, child: Mm, wipes: list[bool]) -> list[Vma]:
    tmps = [v.dup(child) for v in parent.vmas]
    for tmp, wipe in zip(tmps, wipes):
        if wipe:
            tmp.anon_vma = None
    return tmps


def test_children_take_keys_the_child_by_the_parents_int_objects() -> None:
    """children_take() gives the child's list of starts and its page table the parent's own int
    object for each VMA when the fork copied every one of them (as dup_mmap() does: compiled,
    a VMA's start is a machine integer, and ``tmp.start`` would make a new int object for each,
    32 bytes a VMA); a fork stopped early takes the starts of the VMAs it copied.  (Page numbers
    above 256: CPython keeps one object for each small int anyway.)"""
    parent, av = Mm("P"), AnonVma()
    for i, start in enumerate((0x7f0000010, 0x7f0000020, 0x7f0000030)):
        v = Vma(parent, start, start + 1, start, RW, frozenset(), None, f"v{i}")
        v.anon_vma = av
        v.avcs = [AnonVmaChain(v, av, 0)]
        parent.ptes[start] = Page(av, start, f"p{i}")
        parent.append(v)
    for n in (3, 2):
        child = Mm("C")
        tmps = [v.dup(child) for v in parent.vmas][:n]
        children_take(parent, child, tmps, parent.vmas[:n], [False] * n)
        assert child.starts == parent.starts[:n] == [v.start for v in child.vmas]
        assert list(child.ptes) == parent.starts[:n]
        if n == 3:
            assert all(c is p for c, p in zip(child.starts, parent.starts, strict=True))
            assert all(c is p for c, p in zip(child.ptes, parent.starts, strict=True))
    # a fork that skipped the middle VMA (VM_DONTCOPY): each copy keyed by its own start
    child = Mm("C")
    mpnts = [parent.vmas[0], parent.vmas[2]]
    children_take(parent, child, [v.dup(child) for v in mpnts], mpnts, [False, False])
    assert child.starts == list(child.ptes) == [0x7f0000010, 0x7f0000030]
    assert [p.name for p in child.ptes.values()] == ["p0", "p2"]


@pytest.mark.parametrize("child_state", ["new", "checked"])
def test_children_take_is_child_takes_in_bulk(child_state: str) -> None:
    """dup_mmap()'s loop ends, for each copy, in vma_iter_bulk_store() of the child VMA and,
    unless VM_WIPEONFORK emptied it, copy_page_range(), which maps the parent's anonymous pages
    in the child (the same folio, one more mapcount).  children_take() does that for a compiled
    tree's whole fork at once; it must leave the child exactly as child_takes() called for
    each copy in turn: the same VMAs in address order, the same ptes to the same pages, each
    page mapped once more per child, and (once the incremental checks know the child) every new
    VMA marked dirty.  Checked for the whole fork and for a fork stopped after its first two
    copies (a failed anon_vma_fork())."""
    for n in (6, 2):
        parent, _, wipes = _parent()
        one, bulk = Mm("C"), Mm("C")
        for child in (one, bulk):
            if child_state == "checked":
                child.dirty = set()
        tmps_one = _copies(parent, one, wipes)[:n]
        tmps_bulk = _copies(parent, bulk, wipes)[:n]
        for tmp, mpnt, wipe in zip(tmps_one, parent.vmas, wipes):
            child_takes(parent, one, tmp, mpnt, wipe)
        after_one = {p: page.mapcount for p, page in parent.ptes.items()}
        children_take(parent, bulk, tmps_bulk, parent.vmas[:n], wipes[:n])
        assert [(v.name, v.start, v.end) for v in bulk.vmas] == \
            [(v.name, v.start, v.end) for v in one.vmas]
        assert bulk.starts == one.starts == [v.start for v in one.vmas]
        assert {p: page.name for p, page in bulk.ptes.items()} == \
            {p: page.name for p, page in one.ptes.items()}
        assert all(bulk.ptes[p] is parent.ptes[p] for p in bulk.ptes)
        assert {p: page.mapcount for p, page in parent.ptes.items()} == \
            {p: c + (p in bulk.ptes) for p, c in after_one.items()}
        # the wiped VMA's page stays the parent's alone; the last VMA's go only with the
        # whole fork
        both = 3 if n == 6 else 1
        assert {p: page.mapcount for p, page in parent.ptes.items()} == \
            {0x10: 3, 0x20: 3, 0x22: 3, 0x30: 1, 0x60: both, 0x61: both}
        if child_state == "checked":
            assert bulk.dirty == set(tmps_bulk) and one.dirty == set(tmps_one)
        else:
            assert bulk.dirty is one.dirty is None


from anondiff.kernel.state import KernelCrash


def test_a_crash_whose_vma_is_unknown_is_reported_without_one() -> None:
    """A KernelCrash carries the VMA being worked on only when its caller knows it (dup_mmap()
    names the child VMA of a crashing anon_vma_fork()); one raised elsewhere, as a compiled
    kernel tree's BUG in the anon_vma_clone() of a split, is still a CRASH finding, with an
    empty ``where``, and the replay stops there (the later steps are not replayed)."""
    base = type(get("split-counters"))

    class CrashesOnSplit(base):  # type: ignore[misc, valid-type]
        name = "crashes-on-split"

        def anon_vma_clone(self, k, dst, src, op, ctx=None):  # type: ignore[no-untyped-def]
            if op is VmaOp.SPLIT:
                raise KernelCrash("BUG at mm/rmap.c: a split's clone")
            return super().anon_vma_clone(k, dst, src, op, ctx)

    sc = loads("description: x\nprocesses:\n  - name: P\n    vmas:\n"
               "      - {name: a, start: 0x10000, pages: 2, faulted: true}\n"
               "steps:\n  - {mprotect: P/a, offset: 1, pages: 1, prot: r}\n"
               "  - {fork: P, child: C}\n", "x.yaml")
    t = replay(sc, CrashesOnSplit()).final
    assert t.crashed and [p.name for p in t.processes] == ["P"]
    assert [(f.kind, f.where, f.detail, f.step) for f in t.findings if f.kind == "CRASH"] == [
        ("CRASH", "", "BUG at mm/rmap.c: a split's clone", 1)]


# -- the merge step: vma_merge() asked to extend hi's predecessor only ----------------------------

def test_merge_step_across_a_gap_is_refused_as_not_adjacent() -> None:
    """A ``merge`` step asks vma_merge() to extend ``lo`` over ``hi``: with a hole between
    them (lo is hi's predecessor, but does not end where hi starts) nothing merges and the
    finding says why: not adjacent."""
    t = _run1("      - {name: a, start: 0x10000, pages: 1}\n"
              "      - {name: c, start: 0x12000, pages: 1}\n", "  - {merge: P, lo: a, hi: c}\n")
    assert _layout(t) == [("a", 0x10000, 0x11000), ("c", 0x12000, 0x13000)]
    assert [(f.kind, f.where, f.detail) for f in t.findings] == [
        ("MERGE_REFUSED", "P/a", "c not merged into a: not adjacent")]


@pytest.mark.parametrize("policy", ["degree", "split-counters", "clone-rework-2026"])
def test_merge_step_leaves_the_vma_after_hi_alone(policy: str) -> None:
    """The ``merge`` step merges hi into lo (prev) and nothing else, neither VMA split
    (vma_merge() of prev and the middle only): c after b, which could merge with both, stays
    a VMA of its own."""
    t = _run1("      - {name: a, start: 0x10000, pages: 1}\n"
              "      - {name: b, start: 0x11000, pages: 1, prot: r}\n"
              "      - {name: c, start: 0x12000, pages: 1}\n",
              "  - {merge: P, lo: a, hi: b}\n", policy)
    assert _layout(t) == [("a", 0x10000, 0x12000), ("c", 0x12000, 0x13000)]


# -- Enomem: what failed, for a policy file that catches it ---------------------------------------

def test_a_failed_allocation_says_what_where_and_which() -> None:
    """Kernel.arm_enomem(n) makes the step's n-th allocation fail: the Enomem it leaves in
    ``k.failed`` names what was allocated (anon_vma or anon_vma_chain), the kernel function
    that allocated it and n, as its message does."""
    k = Kernel(get("split-counters"))
    k.arm_enomem(2)
    assert not k.anon_vma_chain_alloc_fails("anon_vma_clone")
    assert k.anon_vma_alloc_fails("anon_vma_fork")
    e = k.failed
    assert (e.what, e.func, e.n) == ("anon_vma", "anon_vma_fork", 2)
    assert str(e) == "allocation 2 of the step (anon_vma in anon_vma_fork()) fails"


@pytest.mark.parametrize("at", [2, 3])
def test_split_step_outside_the_vma_is_refused(at: int) -> None:
    """__split_vma() splits at an address strictly inside the VMA (``VM_WARN_ON(vma->vm_start
    >= addr); VM_WARN_ON(vma->vm_end <= addr);``): a ``split`` step at or past the VMA's length
    is bad input, a one-line error naming the VMA and its length (page 0 the loader refuses)."""
    with pytest.raises(ReplayError) as e:
        _run1("      - {name: a, start: 0x10000, pages: 2}\n",
              f"  - {{split: P/a, at: {at}, new: b}}\n")
    assert str(e.value).endswith(f"split: page {at} is not inside P/a (2 pages)"), str(e.value)
    t = _run1("      - {name: a, start: 0x10000, pages: 2}\n", "  - {split: P/a, at: 1, new: b}\n")
    assert _layout(t) == [("a", 0x10000, 0x11000), ("b", 0x11000, 0x12000)]


def test_split_step_names_and_places_the_new_vma() -> None:
    """The ``split`` step: the new VMA takes a name no VMA of the mm has (one taken is bad
    input, a one-line error), and is the part below ``at`` with ``new_below`` (__split_vma()'s
    new_below), the part above without."""
    vmas = "      - {name: a, start: 0x10000, pages: 2}\n      - {name: c, start: 0x20000, pages: 1}\n"
    with pytest.raises(ReplayError) as e:
        _run1(vmas, "  - {split: P/a, at: 1, new: c}\n")
    assert str(e.value).endswith("split: P already has a VMA named 'c'"), str(e.value)
    t = _run1(vmas, "  - {split: P/a, at: 1, new: b, new_below: true}\n")
    assert _layout(t) == [("b", 0x10000, 0x11000), ("a", 0x11000, 0x12000), ("c", 0x20000, 0x21000)]


def test_mremap_flag_refusals_name_einval() -> None:
    """do_mremap()'s flag checks return -EINVAL: MREMAP_DONTUNMAP before v5.7 (the flag does
    not exist; commit e346b3813067 added it) and MREMAP_FIXED without MREMAP_MAYMOVE (which the
    scenario loader refuses, but ``anondiff live`` builds such a step to compare the errno the
    model predicts with the kernel's)."""
    from anondiff.scenario import Mremap, Target
    vmas = "      - {name: A, start: 0x10000, pages: 2}\n"
    with pytest.raises(ReplayError) as e:
        _run1(vmas, "  - {mremap: P/A, flags: [maymove, dontunmap], to: 0x40000}\n", "degree")
    assert str(e.value).endswith("mremap: MREMAP_DONTUNMAP does not exist before v5.7: the "
                                 "kernel returns EINVAL"), str(e.value)
    sc = loads("description: x\nprocesses:\n  - name: P\n    vmas:\n" + vmas + "steps: []\n",
               "x.yaml")
    step = Mremap(Target("P", "A"), None, frozenset({"fixed"}), 0x40000)
    with pytest.raises(ReplayError) as e:
        replay(sc._replace(steps=(step,)), "split-counters")
    assert str(e.value).endswith("mremap: MREMAP_FIXED without MREMAP_MAYMOVE: the kernel "
                                 "returns EINVAL"), str(e.value)


@pytest.mark.parametrize("step, message", [
    ("{mremap: P/A, new_pages: 3, flags: [maymove, dontunmap], to: 0x40000}",
     "MREMAP_DONTUNMAP needs MREMAP_MAYMOVE and old_len == new_len: the kernel returns EINVAL"),
    ("{mremap: P/A, new_pages: 1, flags: [maymove, dontunmap], to: 0x40000}",
     "MREMAP_DONTUNMAP needs MREMAP_MAYMOVE and old_len == new_len: the kernel returns EINVAL"),
    ("{mremap: P, start: 0x30000, pages: 1, flags: [maymove, fixed], to: 0x50000}",
     "no VMA at the old address: the kernel returns EFAULT"),
    ("{mremap: P/X, flags: [maymove, dontunmap], to: 0x40000}",
     "MREMAP_DONTUNMAP of X, a VM_DONTEXPAND mapping: the kernel returns EINVAL"),
    ("{mremap: P, start: 0x11000, pages: 2, new_pages: 3, flags: [maymove], to: 0x40000}",
     "the range crosses the end of A: the kernel returns EFAULT"),
])
def test_mremap_refusals_say_why_and_the_errno(step: str, message: str) -> None:
    """do_mremap()'s refusals, each a one-line error with the errno mremap() returns (which
    ``anondiff live`` compares with the kernel's): MREMAP_DONTUNMAP with a new length, growing
    or shrinking (check_mremap_params(): ``if (flags & MREMAP_DONTUNMAP && (!(flags &
    MREMAP_MAYMOVE) || old_len != new_len)) return -EINVAL``), no VMA at the old address
    (EFAULT), MREMAP_DONTUNMAP of a VM_DONTEXPAND mapping (EINVAL) and a growth across the
    VMA's end (EFAULT)."""
    vmas = ("      - {name: A, start: 0x10000, pages: 2}\n"
            "      - {name: X, start: 0x20000, pages: 1, flags: [dontexpand]}\n")
    with pytest.raises(ReplayError) as e:
        _run1(vmas, f"  - {step}\n")
    assert str(e.value) == f"x.yaml:8: steps[0]: mremap: {message}"


@pytest.mark.parametrize("step, policy, message", [
    ("{mremap: P/X, new_pages: 2}", "split-counters",
     "X is VM_DONTEXPAND and cannot grow: the kernel returns EFAULT"),
    ("{mremap: P/F, flags: [maymove, dontunmap], to: 0x40000}", "v5.10",
     "MREMAP_DONTUNMAP of a shared or file mapping before v5.13: the kernel returns EINVAL"),
    ("{mremap: P/A, flags: [maymove, fixed], to: 0x7ffffffff000}", "split-counters",
     "the destination ends beyond TASK_SIZE: the kernel returns EINVAL"),
    ("{mremap: P/A, flags: [maymove, fixed], to: 0x11000}", "split-counters",
     "the old and new ranges overlap: the kernel returns EINVAL"),
    ("{mremap: P/A, new_pages: 17}", "split-counters",
     "A cannot grow in place and MREMAP_MAYMOVE is not set: the kernel returns ENOMEM"),
    ("{mremap: P/A, new_pages: 17, flags: [maymove]}", "split-counters",
     "the mapping must move: give the address get_unmapped_area() returns ('to'): the kernel "
     "returns ENOMEM"),
    ("{mremap: P/A, new_pages: 17, flags: [maymove], to: 0x7fffffff0000}", "split-counters",
     "the destination ends beyond TASK_SIZE: the kernel returns ENOMEM"),
])
def test_mremap_to_and_growth_refusals(step: str, policy: str, message: str) -> None:
    """The refusals of do_mremap() past the flag checks: a VM_DONTEXPAND VMA cannot grow
    (vma_to_resize(): EFAULT); MREMAP_DONTUNMAP of a file mapping before v5.13 (commit
    a4609387859f extended it: EINVAL); mremap_to()'s destination beyond TASK_SIZE or overlapping
    the old range (EINVAL); a growth blocked by the VMA 17 pages up without MREMAP_MAYMOVE, or
    with it but no destination given (the model does not choose one), or one beyond TASK_SIZE
    (ENOMEM)."""
    vmas = ("      - {name: A, start: 0x10000, pages: 2}\n"
            "      - {name: X, start: 0x20000, pages: 1, flags: [dontexpand]}\n"
            "      - {name: F, start: 0x30000, pages: 1, file: lib}\n")
    with pytest.raises(ReplayError) as e:
        _run1(vmas, f"  - {step}\n", policy)
    assert str(e.value) == f"x.yaml:9: steps[0]: mremap: {message}"


def test_mremap_without_a_destination_is_einval() -> None:
    """mremap_to() needs the destination: a MREMAP_DONTUNMAP step built without ``to`` (the
    loader refuses one, ``anondiff live`` builds steps itself) is EINVAL."""
    from anondiff.scenario import Mremap, Target
    sc = loads("description: x\nprocesses:\n  - name: P\n    vmas:\n"
               "      - {name: A, start: 0x10000, pages: 2}\nsteps: []\n", "x.yaml")
    step = Mremap(Target("P", "A"), None, frozenset({"maymove", "dontunmap"}), None)
    with pytest.raises(ReplayError) as e:
        replay(sc._replace(steps=(step,)), "split-counters")
    assert str(e.value).endswith("mremap: no destination address: the kernel returns EINVAL")


def test_mremap_destination_may_end_at_task_size() -> None:
    """mremap_to(): ``if (new_len > TASK_SIZE || new_addr > TASK_SIZE - new_len) return
    -EINVAL;`` (and get_unmapped_area()'s same bound for a move of a growing mapping): a
    destination ending exactly at TASK_SIZE (1 << 47 on x86-64) is allowed, by either path."""
    top = 1 << 47
    vmas = ("      - {name: A, start: 0x10000, pages: 2}\n"
            "      - {name: X, start: 0x12000, pages: 1, file: lib}\n")
    t = _run1(vmas, f"  - {{mremap: P/A, flags: [maymove, fixed], to: {top - 0x2000:#x}}}\n")
    assert _layout(t) == [("X", 0x12000, 0x13000), ("A", top - 0x2000, top)]
    t = _run1(vmas, f"  - {{mremap: P/A, new_pages: 3, flags: [maymove], to: {top - 0x3000:#x}}}\n")
    assert _layout(t) == [("X", 0x12000, 0x13000), ("A", top - 0x3000, top)]


def test_mremap_in_place_keeps_the_vma_and_its_name() -> None:
    """A shrink or a growth in place makes no VMA (do_mremap() returns the old address; the VMA
    is cut, or vma_merge_extend() expands it): a ``name`` given for a VMA the step would create
    names nothing, the VMA keeps its own."""
    vmas = "      - {name: A, start: 0x10000, pages: 2}\n"
    assert _layout(_run1(vmas, "  - {mremap: P/A, new_pages: 1, name: X}\n")) == [
        ("A", 0x10000, 0x11000)]
    assert _layout(_run1(vmas, "  - {mremap: P/A, new_pages: 3, name: X}\n")) == [
        ("A", 0x10000, 0x13000)]


def test_mremap_grows_in_place_up_to_task_size() -> None:
    """vma_expandable(): ``if (vma->vm_end + delta > TASK_SIZE)`` (through
    get_unmapped_area()'s bound) the VMA cannot grow in place: one ending a page below
    TASK_SIZE grows by that page, not by two (without MREMAP_MAYMOVE: -ENOMEM)."""
    top = 1 << 47
    vmas = f"      - {{name: A, start: {top - 0x3000:#x}, pages: 2}}\n"
    assert _layout(_run1(vmas, "  - {mremap: P/A, new_pages: 3}\n")) == [("A", top - 0x3000, top)]
    with pytest.raises(ReplayError) as e:
        _run1(vmas, "  - {mremap: P/A, new_pages: 4}\n")
    assert str(e.value).endswith("mremap: A cannot grow in place and MREMAP_MAYMOVE is not set: "
                                 "the kernel returns ENOMEM"), str(e.value)


def test_mremap_step_names_its_copies_and_its_errors() -> None:
    """The ``mremap`` step: a VMA the move creates while the source keeps a part is named
    ``<source>.<n>``, n the first number free (A.1, then A.2); a ``name`` already taken in
    the mm, or a range not inside the VMA, is bad input, a one-line error naming the step."""
    vmas = ("      - {name: A, start: 0x10000, pages: 4}\n"
            "      - {name: B, start: 0x20000, pages: 1, file: lib}\n")
    t = _run1(vmas, "  - {mremap: P/A, offset: 0, pages: 1, flags: [maymove, fixed], to: 0x40000}\n"
                    "  - {mremap: P/A, offset: 0, pages: 1, flags: [maymove, fixed], to: 0x50000}\n")
    assert _layout(t) == [("A", 0x12000, 0x14000), ("B", 0x20000, 0x21000),
                          ("A.1", 0x40000, 0x41000), ("A.2", 0x50000, 0x51000)]
    with pytest.raises(ReplayError) as e:
        _run1(vmas, "  - {mremap: P/A, flags: [maymove, fixed], to: 0x40000, name: B}\n")
    assert str(e.value).endswith("mremap: P already has a VMA named 'B'"), str(e.value)
    with pytest.raises(ReplayError) as e:
        _run1(vmas, "  - {mremap: P/B, offset: 1, pages: 2, flags: [maymove, fixed], to: 0x40000}\n")
    assert str(e.value).endswith("mremap: pages [1, 3) are not inside P/B (1 pages)"), str(e.value)


@pytest.mark.parametrize("policy", ["degree", "split-counters", "clone-rework-2026"])
def test_three_way_merges_keep_the_right_flags_and_anon_vmas(policy: str) -> None:
    """vma_merge_new_range() of a range filling the hole between prev and next:
    * an mmap: prev takes the range and next and keeps its own flags (VM_DONTCOPY here); the
      range's VM_SOFTDIRTY is kept (__mmap_region() sets it on a new mapping), and none is
      invented when the range has none;
    * a copy (mremap) of a never-faulted VMA between two faulted VMAs with different
      anon_vmas: is_mergeable_anon_vma() allows each side, but prev and next may not merge
      with each other (can_vma_merge_right(): ``is_mergeable_anon_vma(prev->anon_vma,
      next->anon_vma, NULL)``), so prev takes the range alone;
    * the same copy between two never-faulted VMAs takes next in, and next's VM_SOFTDIRTY
      survives only in the 2026 tree (VMA_STICKY_FLAGS, mm/vma.c@7.2.13 vma_expand())."""
    vmas = ("      - {name: a, start: 0x10000, pages: 1, flags: [dontcopy]}\n"
            "      - {name: c, start: 0x12000, pages: 1, flags: [dontcopy]}\n")
    for flags, want in (("[dontcopy]", ("account", "dontcopy")),
                        ("[dontcopy, softdirty]", ("account", "dontcopy", "softdirty"))):
        t = _run1(vmas, f"  - {{mmap: P, name: b, start: 0x11000, pages: 1, prot: rw, "
                        f"flags: {flags}}}\n", policy)
        assert [(v.name, v.start, v.end, v.flags) for v in t.process("P").vmas] == [
            ("a", 0x10000, 0x13000, want)]
    move = "  - {mremap: P/u, flags: [maymove, fixed], to: 0x11000}\n"
    t = _run1("      - {name: a, start: 0x10000, pages: 1, faulted: true}\n"
              "      - {name: c, start: 0x12000, pages: 1, faulted: true}\n"
              "      - {name: u, start: 0x20000, pages: 1}\n", move, policy)
    assert [(v.name, v.start, v.end, v.anon_vma) for v in t.process("P").vmas] == [
        ("a", 0x10000, 0x12000, "AV1"), ("c", 0x12000, 0x13000, "AV2")]
    assert [f.kind for f in t.findings] == ["MERGED"]
    t = _run1("      - {name: a, start: 0x10000, pages: 1}\n"
              "      - {name: c, start: 0x12000, pages: 1, flags: [softdirty]}\n"
              "      - {name: u, start: 0x20000, pages: 1}\n", move, policy)
    sticky = ("softdirty",) if policy == "clone-rework-2026" else ()
    assert [(v.name, v.start, v.end, v.flags) for v in t.process("P").vmas] == [
        ("a", 0x10000, 0x13000, ("account",) + sticky)]



@pytest.mark.parametrize("label, names", [
    ("AV1", ["AV2", "AV1", "AV3", "AV4"]),
    ("AV2", ["AV1", "AV2", "AV3", "AV4"]),
    ("AV01", ["AV1", "AV01", "AV2", "AV3"]),
    ("X", ["AV1", "X", "AV2", "AV3"]),
])
def test_anon_vma_names_skip_the_labels_the_layout_gives(label: str, names: list[str]) -> None:
    """A layout may name a VMA's anon_vma (``anon_vma: LABEL``); the anon_vmas named in turn
    (AV1, AV2, ...) skip a label of that form, whichever number it takes, and no other label
    (AV01 or X does not hold AV1): P/a, P/b, then C/a and C/b after the fork."""
    t = _run1("      - {name: a, start: 0x10000, pages: 1, faulted: true}\n"
              f"      - {{name: b, start: 0x20000, pages: 1, faulted: true, anon_vma: {label}}}\n",
              "  - {fork: P, child: C}\n")
    assert [v.anon_vma for p in t.processes for v in p.vmas] == names


def test_mmap_step_errors_and_merge_finding() -> None:
    """The ``mmap`` step: a range over a mapped page is refused (MAP_FIXED_NOREPLACE: -EEXIST),
    so is a name the mm already has, each in one line; a new mapping vma_merge() joined to a
    neighbour is a MERGED finding naming both."""
    vmas = "      - {name: a, start: 0x10000, pages: 2}\n"
    with pytest.raises(ReplayError) as e:
        _run1(vmas, "  - {mmap: P, name: b, start: 0x11000, pages: 1, prot: rw}\n")
    assert str(e.value).endswith("mmap: b overlaps P/a (MAP_FIXED_NOREPLACE semantics: unmap it "
                                 "first)"), str(e.value)
    with pytest.raises(ReplayError) as e:
        _run1(vmas, "  - {mmap: P, name: a, start: 0x20000, pages: 1, prot: rw}\n")
    assert str(e.value).endswith("mmap: P already has a VMA named 'a'"), str(e.value)
    t = _run1(vmas, "  - {mmap: P, name: b, start: 0x12000, pages: 1, prot: rw}\n")
    assert [(f.kind, f.where, f.detail) for f in t.findings] == [
        ("MERGED", "P/a", "mmap of b merged into a")]


@pytest.mark.parametrize("policy", ["degree", "split-counters", "clone-rework-2026"])
def test_mmap_merged_into_one_side_keeps_that_sides_flags(policy: str) -> None:
    """vma_merge_new_range() of an mmap taken by prev alone or by next alone: the VMA that
    takes it keeps its own flags (VM_DONTCOPY here), and gains no VM_SOFTDIRTY the range did
    not ask for."""
    for vmas, start in (("      - {name: a, start: 0x10000, pages: 1, flags: [dontcopy]}\n",
                         0x11000),
                        ("      - {name: a, start: 0x12000, pages: 1, flags: [dontcopy]}\n",
                         0x11000)):
        t = _run1(vmas, f"  - {{mmap: P, name: b, start: {start:#x}, pages: 1, prot: rw, "
                        "flags: [dontcopy]}\n", policy)
        assert [v.flags for v in t.process("P").vmas] == [("account", "dontcopy")]


@pytest.mark.parametrize("handled", [True, False])
def test_a_policy_may_do_anon_vma_merge_itself(handled: bool) -> None:
    """remove_merged(): a policy with its own ``anon_vma_merge(k, kept, gone)`` (a compiled
    kernel tree runs the tree's anon_vma_merge()) is asked first, with the VMA kept and the
    one merged away; when it says it did the work the model's anon_vma_merge() (the
    VM_BUG_ON check and unlink_anon_vmas() of the one gone) is skipped, else it runs."""
    base = type(get("split-counters"))
    calls: list[tuple] = []
    unlinked: list[str] = []

    class OwnMerge(base):  # type: ignore[misc, valid-type]
        name = "own-merge"

        def anon_vma_merge(self, k, kept, gone):  # type: ignore[no-untyped-def]
            calls.append((type(k).__name__, kept.name, gone.name))
            return handled

        def unlink_anon_vmas(self, k, vma):  # type: ignore[no-untyped-def]
            unlinked.append(vma.name)
            return super().unlink_anon_vmas(k, vma)

    t = replay(loads(THREE % (", faulted: [0]", ""), "x.yaml"), OwnMerge()).final
    assert layout(t) == [(0x10000, 0x13000, "AV1")]
    assert calls == [("Kernel", "A", "B"), ("Kernel", "A", "C")]
    assert unlinked == ([] if handled else ["B", "C"])


# -- dup_mmap(): what anon_vma_fork() sees, VM_WIPEONFORK before v5.6, a compiled tree's own fork --

from anondiff.kernel.fork import CHILD, PARENT

# a DONTCOPY VMA first (the parent's vm_prev of A, never copied), then A and B sharing AV0
FORK_CTX = ("      - {name: X, start: 0x10000, pages: 1, flags: [dontcopy]}\n"
            "      - {name: A, start: 0x11000, pages: 1, faulted: true, anon_vma: AV0}\n"
            "      - {name: B, start: 0x12000, pages: 1, faulted: true, anon_vma: AV0}\n")


def _name(v: object) -> object:
    return f"{v.mm.name}/{v.name}" if isinstance(v, Vma) else v


@pytest.mark.parametrize("policy", EVERY)
def test_anon_vma_fork_sees_what_dup_mmap_left_in_tmp(policy: str) -> None:
    """What anon_vma_fork() (and a user's policy file overriding it) sees of the surroundings,
    per era (spec section 1.11):

    * up to v5.5 the copy is a byte copy (vm_area_dup() in kernel/fork.c@v4.19, ``*tmp =
      *mpnt`` before it), so ``tmp->vm_prev``/``vm_next`` are still the *parent's* neighbours
      when anon_vma_fork() runs, DONTCOPY ones included (X before A, B after A), and nothing
      after the last VMA;
    * Konstantin Khlebnikov's v1 and v2 2/2 (<157839239842.694.2288178566540902852.stgit@buzz>,
      and wei-intended's reading of commit 4e4a9eb92133) set ``vm_prev`` to the child's previous
      VMA and ``vm_next`` to NULL first;
    * from v5.6 ("mm: set vm_next and vm_prev to NULL in vm_area_dup()"; the maple tree of v6.1
      has none) both are NULL;

    in every era ``prev`` is the last child VMA copied and ``pvma_prev`` the parent's previous
    VMA.  And every anon_vma_clone() a fork makes is told so (VMA_OP_FORK) and handed that same
    context, whichever path of anon_vma_fork() calls it (kk-v1, kk-v2 and mirror-parent clone
    through ChainCopyPolicy._fork_clone(), here for B, whose parent shares A's anon_vma)."""
    base = type(get(policy))
    forks: list[tuple] = []
    contexts: list[object] = []
    clones: list[tuple] = []

    class Seeing(base):  # type: ignore[misc, valid-type]
        name = "seeing"

        def anon_vma_fork(self, k, vma, pvma, ctx):  # type: ignore[no-untyped-def]
            forks.append((vma.name, _name(ctx.prev), _name(ctx.vm_prev), _name(ctx.vm_next),
                          _name(ctx.pvma_prev)))
            contexts.append(ctx)
            return super().anon_vma_fork(k, vma, pvma, ctx)

        def anon_vma_clone(self, k, dst, src, op, ctx=None):  # type: ignore[no-untyped-def]
            if op is VmaOp.FORK:
                clones.append((dst.name, ctx is contexts[-1]))
            return super().anon_vma_clone(k, dst, src, op, ctx)

    t = replay(loads("description: x\nprocesses:\n  - name: P\n    vmas:\n" + FORK_CTX
                     + "steps:\n  - {fork: P, child: C}\n", "x.yaml"), Seeing()).final
    assert [v.name for v in t.process("C").vmas] == ["A", "B"]
    era = base.dup_mmap.vm_prev
    if era == PARENT:
        seen = [("A", None, "P/X", "P/B", "P/X"), ("B", "C/A", "P/A", None, "P/A")]
    elif era == CHILD:
        seen = [("A", None, None, None, "P/X"), ("B", "C/A", "C/A", None, "P/A")]
    else:
        seen = [("A", None, None, None, "P/X"), ("B", "C/A", None, None, "P/A")]
    assert forks == seen
    assert "B" in [name for name, _ in clones] and all(same for _, same in clones), clones


WIPE = ("      - {name: L, start: 0x8000, pages: 1, file: lib}\n"
        "      - {name: W1, start: 0x10000, pages: 1, flags: [wipeonfork]}\n"
        "      - {name: W2, start: 0x11000, pages: 1, flags: [wipeonfork], faulted: true}\n")


@pytest.mark.parametrize("policy, w1, w2", [
    ("degree", "AV1", "AV2"),            # v4.14 .. v5.4: the parent's neighbours
    ("wei-4e4a9eb92133", "AV1", "AV2"),  # v5.5 likewise
    ("v2", "AV2", "AV2"),                # v2 2/2: the child's previous VMA, no next
    ("split-counters", None, None),      # v5.6+: no prepare at fork
])
def test_wipeonfork_prepare_at_fork_looks_at_the_parents_next_vma(policy: str, w1: str | None,
                                                                  w2: str | None) -> None:
    """VM_WIPEONFORK (commit "mm,fork: introduce MADV_WIPEONFORK", v4.14) up to v5.5:
    dup_mmap() runs anon_vma_prepare(tmp) at fork while tmp's vm_prev/vm_next are still the
    parent's (kernel/fork.c@v4.19), and find_mergeable_anon_vma() tries vm_next first: the
    child's W1 takes the anon_vma of the *parent's* W2 (adjacent, compatible, singular chain),
    AV1, a parent's anon_vma (spec section 1.11, "poking parent VMAs").  The child's W2 has
    no parent neighbour with an anon_vma after it and gets a root of its own.  v2 2/2 makes the
    search see the child's previous VMA instead; from v5.6 ("mm: don't prepare anon_vma if vma
    has VM_WIPEONFORK") a wiped VMA has no anon_vma until its first fault."""
    t = _run1(WIPE, "  - {fork: P, child: C}\n", policy)
    assert [(v.name, v.anon_vma, v.pages) for v in t.process("C").vmas] == [
        ("L", None, ()), ("W1", w1, ()), ("W2", w2, ())]
    assert t.vma("P/W2").anon_vma == "AV1"


@pytest.mark.parametrize("handled", [True, False])
@pytest.mark.parametrize("names", [True, False])
def test_a_policy_may_do_dup_mmap_itself(handled: bool, names: bool) -> None:
    """dup_mmap(): a policy with its own ``_own_dup_mmap(k, parent, child, rename)`` (a
    compiled kernel tree forks every VMA in one call into C) is asked first, with the kernel,
    the parent's and the child's mm and the names the child's VMAs take (every copy's; None
    for a fork that gives no ``names``: each copy keeps its parent's name); when it says it did
    the fork the model's loop (one anon_vma_fork() per VMA) is skipped, else it runs."""
    base = type(get("split-counters"))
    asked: list[tuple] = []
    forked: list[str] = []

    class OwnFork(base):  # type: ignore[misc, valid-type]
        name = "own-fork"

        def _own_dup_mmap(self, k, parent, child, rename):  # type: ignore[no-untyped-def]
            asked.append((type(k).__name__, parent.name, child.name,
                          None if rename is None else dict(rename)))
            return handled

        def anon_vma_fork(self, k, vma, pvma, ctx):  # type: ignore[no-untyped-def]
            forked.append(vma.name)
            return super().anon_vma_fork(k, vma, pvma, ctx)

    fork = "{fork: P, child: C, names: {A: A2}}" if names else "{fork: P, child: C}"
    t = replay(loads("description: x\nprocesses:\n  - name: P\n    vmas:\n" + FORK_CTX
                     + f"steps:\n  - {fork}\n", "x.yaml"), OwnFork()).final
    a = "A2" if names else "A"
    assert asked == [("Kernel", "P", "C", {"A": a, "B": "B"} if names else None)]
    assert forked == ([] if handled else [a, "B"])
    assert [v.name for v in t.process("C").vmas] == ([] if handled else [a, "B"])


def test_fork_shares_no_page_past_the_vmas_end() -> None:
    """copy_page_range() walks [vma->vm_start, vma->vm_end) of each VMA copied: the page right
    after a VMA (here the first page of B, which is VM_DONTCOPY and not copied) stays the
    parent's alone, so the parent's write to it reuses it (mapcount 1, folio_move_anon_rmap(),
    commit c44b674323f4) instead of copying.  A is longer than the parent has ptes, the walk
    of the ptes found inside the VMA."""
    t = _run1("      - {name: A, start: 0x10000, pages: 3, faulted: [0]}\n"
              "      - {name: B, start: 0x13000, pages: 1, flags: [dontcopy], faulted: true}\n",
              "  - {fork: P, child: C}\n  - {write: P/B}\n")
    assert [p.name for p in t.vma("P/B").pages] == ["pg1"]
    assert [p.name for p in t.vma("C/A").pages] == ["pg0"]


def test_unknown_policy_names_the_newest_release_modelled() -> None:
    """-p NAME that is no policy, alias, version, file or tree: one line listing what is
    accepted, kernel versions from v2.6.34 (commit 5beb49305251, anon_vma_chain) to the newest
    release modelled."""
    with pytest.raises(UnknownPolicyError) as e:
        get("nonsense")
    assert str(e.value) == (
        f"unknown policy: 'nonsense' (must be one of {names()}, a kernel version from v2.6.34 "
        "to v7.2 such as v4.19 or v6.12 (see 'anondiff policies'), a .py file, or a kernel "
        "source tree (a directory with a Makefile and mm/, or a .tar.xz/.tar.gz/.tar.bz2/.tar "
        "tarball) followed by +PATCH for each patch to apply, an mbox or a unified diff "
        "(~/linux+v3.mbox))")


# -- faults and unmaps: the mapcount decides between reuse and COW -----------------------------

ONE = "      - {name: A, start: 0x10000, pages: 1, faulted: true}\n"


def test_cow_drops_one_mapping_of_the_old_page() -> None:
    """wp_page_copy(): a write to a page others map too gives the writer a new page, and the
    old page loses that one mapping (page_remove_rmap(): mapcount - 1).  Mapped by P and two
    children, it is copied by C1, then by C2; P is then its only mapper and reuses it
    (do_wp_page(): mapcount 1, folio_move_anon_rmap(), commit c44b674323f4)."""
    t = _run1(ONE, "  - {fork: P, child: C1}\n  - {fork: P, child: C2}\n"
                   "  - {write: C1/A}\n  - {write: C2/A}\n  - {write: P/A}\n")
    assert [(p.name, p.vmas[0].pages[0].name, p.vmas[0].pages[0].mapping)
            for p in t.processes] == [
        ("P", "pg0", "AV1"), ("C1", "pg1", "AV2"), ("C2", "pg2", "AV3")]


def test_unmap_and_exit_drop_one_mapping_each() -> None:
    """zap_pte_range(): munmap() and exit (exit_mmap()) drop their process's mapping of each
    page (mapcount - 1), and no other.  Mapped by P and three children, then unmapped by C1
    and C2's exit, the page is still P's and C3's: C3's write copies it, P's then reuses it."""
    t = _run1(ONE, "  - {fork: P, child: C1}\n  - {fork: P, child: C2}\n"
                   "  - {fork: P, child: C3}\n  - {munmap: C1/A}\n  - {exit: C2}\n"
                   "  - {write: C3/A}\n  - {write: P/A}\n")
    assert [p.name for p in t.processes] == ["P", "C1", "C3"]
    assert t.vma("C3/A").pages[0].name == "pg1" and t.vma("P/A").pages[0].name == "pg0"


def test_first_write_takes_the_anon_vma_of_the_next_vma() -> None:
    """A write to a VMA without anon_vma runs __anon_vma_prepare(), whose
    find_mergeable_anon_vma() tries the next VMA first (then the previous one): B, right after
    A, compatible (same flags, linear pgoff) and with a singular chain, lends its anon_vma."""
    t = _run1("      - {name: A, start: 0x10000, pages: 1}\n"
              "      - {name: B, start: 0x11000, pages: 1, faulted: true}\n",
              "  - {write: P/A}\n")
    assert [(v.name, v.anon_vma, v.chain) for v in t.process("P").vmas] == [
        ("A", "AV1", ("AV1",)), ("B", "AV1", ("AV1",))]
    assert t.vma("P/A").pages[0].mapping == "AV1"


# -- vma_merge() of an existing range: which VMA takes it, its anon_vma, the MERGED text ---------

#: the 2025 three-case rule of is_mergeable_anon_vma() ("mm/vma: fix incorrectly disallowed
#: anonymous VMA merges"): an unfaulted target may take a faulted range
RULE_2025 = {"split-counters", "clone-rework-2026", "mirror-parent"}


@pytest.mark.parametrize("policy", EVERY)
def test_merge_of_prev_and_next_around_a_faulted_middle(policy: str) -> None:
    """vma_merge() case 1 with the anon_vma in the middle (prev and next never faulted).  Under
    the 2025 rule prev expands over both and imports the middle's anon_vma (dup_anon_vma() of
    vma_merge_existing_range(): next's if it has one, else middle's), so the middle's page
    stays reachable and no anon_vma_merge() VM_BUG_ON fires.  Before it (commit 965f55dea0e3)
    a faulted range never merges into an unfaulted VMA, whose empty chain is not singular:
    nothing merges."""
    t = run((THREE % ("", "")).replace("prot: r}", "prot: r, faulted: [0]}"), policy)
    if policy in RULE_2025:
        assert layout(t) == [(0x10000, 0x13000, "AV1")]
        assert [f.kind for f in t.findings] == ["MERGED"]
    else:
        assert layout(t) == [(0x10000, 0x11000, None), (0x11000, 0x12000, "AV1"),
                             (0x12000, 0x13000, None)]
        assert not t.findings
    pages = [p for v in t.process("P").vmas for p in v.pages]
    assert [(p.name, p.mapping, p.in_chain) for p in pages] == [("pg0", "AV1", True)]


@pytest.mark.parametrize("policy", ["degree", "split-counters", "clone-rework-2026"])
def test_mprotect_merges_into_the_next_vma(policy: str) -> None:
    """vma_merge() case 4/5 (vma_merge_existing_range(): merge right): a range made like the
    VMA after it goes to that VMA, which starts lower; the finding names the range and both
    VMAs.  A private file mapping merges only with a mapping of the same file at the following
    offset (is_mergeable_vma(): ``vma->vm_file != file``), never with an anonymous one."""
    t = _run1("      - {name: B, start: 0x10000, pages: 2, prot: r}\n"
              "      - {name: C, start: 0x12000, pages: 1}\n",
              "  - {mprotect: P/B, offset: 1, pages: 1, prot: rw}\n", policy)
    assert _layout(t) == [("B", 0x10000, 0x11000), ("C", 0x11000, 0x13000)]
    assert [(f.kind, f.where, f.detail) for f in t.findings] == [
        ("MERGED", "P/C", "[0x11000, 0x12000) of B merged into C")]
    for c, merged in (("file: lib", True), ("file: other", False), ("faulted: false", False)):
        t = _run1("      - {name: B, start: 0x10000, pages: 1, prot: r, file: lib}\n"
                  f"      - {{name: C, start: 0x11000, pages: 1, {c}}}\n",
                  "  - {mprotect: P/B, prot: rw}\n", policy)
        assert _layout(t) == ([("C", 0x10000, 0x12000)] if merged else
                              [("B", 0x10000, 0x11000), ("C", 0x11000, 0x12000)]), c


# -- dup_mmap()'s child names ---------------------------------------------------------------------

@pytest.mark.parametrize("order", ["parent's", "reversed", "equal strings", "none"])
def test_dup_mmap_names_each_copy_by_rename(order: str) -> None:
    """dup_mmap() takes the child's names from ``rename`` in the parent's order when the dict
    follows it (as the engine builds it) and looks each one up otherwise: a dict in another
    order, or keyed by equal strings that are other objects, names every copy the same.  A
    VM_DONTCOPY VMA is skipped and has no entry.  Without ``rename`` (a fork without
    ``names``) every copy keeps its parent's name (the policy asked with None)."""
    from anondiff.kernel.fork import dup_mmap
    from anondiff.kernel.objects import VM_DONTCOPY
    k = Kernel(get("split-counters"))
    parent = Mm("P")
    for i, start in enumerate((0x10, 0x20, 0x30, 0x40)):
        v = Vma(parent, start, start + 1, start, RW,
                frozenset({VM_DONTCOPY}) if i == 1 else frozenset(), None, f"v{i}")
        parent.append(v)
    copied = [v for v in parent.vmas if v.name != "v1"]
    pairs = [(v.name, f"c{v.name}") for v in copied]
    if order == "reversed":
        pairs.reverse()
    elif order == "equal strings":
        pairs = [("".join(list(old)), new) for old, new in pairs]
    child = Mm("C")
    if order == "none":
        k.policy = _NeverOwnsFork()
        dup_mmap(k, parent, child)
        assert [(v.name, v.start) for v in child.vmas] == [("v0", 0x10), ("v2", 0x30),
                                                           ("v3", 0x40)]
        assert k.policy.asked == [None]
        return
    dup_mmap(k, parent, child, dict(pairs))
    assert [(v.name, v.start) for v in child.vmas] == [("cv0", 0x10), ("cv2", 0x30),
                                                       ("cv3", 0x40)]


class _NeverOwnsFork(type(get("split-counters"))):  # type: ignore[misc]
    """split-counters, noting each ``rename`` it is asked to run dup_mmap() with, and saying no."""

    name = "never-owns-fork"

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[dict[str, str] | None] = []

    def _own_dup_mmap(self, k, parent, child, rename):  # type: ignore[no-untyped-def]
        self.asked.append(rename)
        return False


def test_chain_links_mark_vmas_only_in_mms_the_checks_know() -> None:
    """anon_vma_chain_link() and anon_vma_fork()'s new anon_vma mark the VMA for the
    incremental checks in an mm they know (``Mm.dirty`` set) and not in one they have not seen
    yet, a fork's child, which they check whole; the full fork leaves the child's VMAs out of
    ``Kernel.dirty_vmas`` and the checks after it agree with the full recount."""
    from anondiff.kernel.checks import IncrementalChecks, check
    from anondiff.kernel.rmap import anon_vma_chain_link, new_child_anon_vma
    k = Kernel(get("split-counters"))
    for known in (False, True):
        mm = Mm("P")
        if known:
            mm.dirty = k.dirty_vmas
        a, b = _vma(mm, "a", 0x10), _vma(mm, "b", 0x20)
        root = AnonVma()
        anon_vma_chain_link(k, a, root)
        new_child_anon_vma(k, b, root)
        assert (a in k.dirty_vmas, b in k.dirty_vmas) == (known, known)
    from anondiff.engine import _Replayer
    from anondiff.scenario import Fork, ProcessSpec, Scenario, VmaSpec
    vmas = tuple(VmaSpec(f"v{i}", (0x10 + i) << 12, (0x11 + i) << 12, RW, frozenset(),
                         faulted=True, anon_vma="AV0") for i in range(3))
    sc = Scenario(path="<test>", name="fork", description="",
                  processes=(ProcessSpec("P", vmas),), steps=(Fork("P", "C"),))
    r = _Replayer(sc, get("split-counters"), "incremental")
    r.layout()
    r.record()
    r.step_no = 1
    r.do(sc.steps[0])
    child = r.k.mms["C"]
    assert child.dirty is None and not set(child.vmas) & r.k.dirty_vmas
    checker = IncrementalChecks(r.k)
    checker.update()
    assert checker.current() == set(check(r.k))


# -- what a write fault hands anon_vma_prepare(), and labels that look like automatic names ---
from anondiff.policies.split_counters import SplitCountersPolicy  # noqa: E402

NEIGHBOURS = """
description: three VMAs in a row, a hole between the second and the third
processes:
  - name: P
    vmas:
      - {name: lo, start: 0x100000, pages: 1, prot: rw}
      - {name: mid, start: 0x101000, pages: 1, prot: rw}
      - {name: hi, start: 0x200000, pages: 1, prot: rw}
steps:
  - {write: P/lo}
  - {write: P/mid}
  - {write: P/hi}
"""


def test_a_write_fault_hands_anon_vma_prepare_the_mm_neighbours() -> None:
    """do_anonymous_page() -> __anon_vma_prepare(vma) looks at vma's neighbours in the mm (the
    maple tree's prev and next, however far): a policy's anon_vma_prepare() is handed exactly
    those, None past either end (the lowest VMA has no prev: not the mm's last one)."""
    seen: list[tuple[str, str | None, str | None]] = []

    class Recording(SplitCountersPolicy):
        name = "recording"

        def anon_vma_prepare(self, k: Kernel, vma: Vma, prev: Vma | None,
                             next: Vma | None) -> None:
            seen.append((vma.name, prev and prev.name, next and next.name))
            super().anon_vma_prepare(k, vma, prev, next)

    replay(loads(NEIGHBOURS, "neighbours.yaml"), Recording())
    assert seen == [("lo", None, "mid"), ("mid", "lo", "hi"), ("hi", "mid", None)]


def test_only_an_av_label_reserves_its_number() -> None:
    """A scenario's label of the form AV<n> keeps automatic names off AV<n>; a label of any
    other form, digits after two other letters included (XY2), reserves nothing."""
    text = """
description: labelled anon_vmas beside automatic ones
processes:
  - name: P
    vmas:
      - {name: a, start: 0x100000, pages: 1, prot: rw, faulted: true, anon_vma: XY2}
      - {name: b, start: 0x200000, pages: 1, prot: rw, faulted: true, anon_vma: AV1}
      - {name: c, start: 0x300000, pages: 1, prot: rw, faulted: true}
"""
    final = replay(loads(text, "labels.yaml"), "split-counters").final
    assert {v.name: v.anon_vma for p in final.processes for v in p.vmas} == {
        "a": "XY2", "b": "AV1", "c": "AV2"}
