"""The scenario loader: good documents, one test per class of error, and fuzzing."""
from __future__ import annotations

import os
import re
import textwrap
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anondiff.errors import ScenarioError
from anondiff.scenario import (
    EXPECT_KINDS, STEP_KINDS, TOP_KEYS, VMA_KEYS, Exit, Expectation, Fault, Fork, Madvise, Mmap,
    Mprotect, Munmap, ProcessSpec, Scenario, Snapshot, Target, VmaSpec, load, loads,
)

RW = frozenset({"read", "write"})
R = frozenset({"read"})
NONE = frozenset()

SEED = """\
description: |
  SRC1..SRC4 share AV0 (one faulted mapping split by mprotect), then P forks.
policies: [degree, v2]
processes:
  - name: P
    vmas:
      - {name: SRC1, start: 0x10000, pages: 1, faulted: true, anon_vma: AV0}
      - {name: SRC2, start: 0x11000, pages: 1, prot: r, faulted: true, anon_vma: AV0}
      - {name: SRC3, start: 0x12000, pages: 1, faulted: true, anon_vma: AV0}
      - {name: SRC4, start: 0x13000, end: 0x14000, prot: r, faulted: [0], anon_vma: AV0}
steps:
  - fork: P
    child: C
    names: [DST1, DST2, DST3, DST4]
expect:
  - same_anon_vma: [C/DST2, C/DST3]
    policies: [degree]
"""


def doc(body: str) -> str:
    return textwrap.dedent(body)


def error(text: str, path: str = "t.yaml") -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        loads(text, path)
    return info.value


# A minimal valid head: one process P with one faulted VMA A at 0x10000 (lines 1-5).
HEAD = doc("""\
    description: x
    processes:
      - name: P
        vmas:
          - {name: A, start: 0x10000, pages: 4, faulted: true, anon_vma: AV0}
    """)


# -- good documents -------------------------------------------------------------------------------

def test_seed_scenario_loads_exactly() -> None:
    got = loads(SEED, "scenarios/seed.yaml")
    assert got == Scenario(
        path="scenarios/seed.yaml",
        name="seed",
        description="SRC1..SRC4 share AV0 (one faulted mapping split by mprotect), then P forks.",
        policies=("degree", "v2"),
        processes=(ProcessSpec(name="P", line=5, vmas=(
            VmaSpec("SRC1", 0x10000, 0x11000, RW, NONE, faulted=True, anon_vma="AV0", line=7),
            VmaSpec("SRC2", 0x11000, 0x12000, R, NONE, faulted=True, anon_vma="AV0", line=8),
            VmaSpec("SRC3", 0x12000, 0x13000, RW, NONE, faulted=True, anon_vma="AV0", line=9),
            VmaSpec("SRC4", 0x13000, 0x14000, R, NONE, faulted=True, pages=(0,),
                    anon_vma="AV0", line=10),
        )),),
        steps=(Fork("P", "C", ("DST1", "DST2", "DST3", "DST4"), line=12),),
        expectations=(Expectation("same_anon_vma", ("C/DST2", "C/DST3"), ("degree",), line=16),),
    )


def test_vmas_are_sorted_and_every_vma_key_is_read() -> None:
    got = loads(doc("""\
        description: every VMA key
        processes:
          - name: P
            vmas:
              - name: HI
                start: 0x7f0000000000
                end: 0x7f0000004000
                prot: xr
                flags: [wipeonfork, dontcopy]
                file: libc.so.6
                faulted: [3, 1]
              - name: LO
                start: 4096
                pages: 1
                prot: none
                shared: true
                file: ~
          - name: Q
            vmas: []
          - name: R
        """))
    p, q, r = got.processes
    assert p.vmas == (
        VmaSpec("LO", 0x1000, 0x2000, NONE, NONE, shared=True, line=12),
        VmaSpec("HI", 0x7F0000000000, 0x7F0000004000, frozenset({"read", "exec"}),
                frozenset({"dontcopy", "wipeonfork"}), file="libc.so.6", faulted=True,
                pages=(1, 3), line=5),
    )
    assert q == ProcessSpec("Q", (), line=18) and r == ProcessSpec("R", (), line=20)
    assert got.steps == () and got.expectations == () and got.policies is None
    assert got.name == "<string>" and got.path == "<string>"


def test_every_step_kind() -> None:
    got = loads(HEAD + doc("""\
        steps:
          - snapshot: start
          - fork: P
            child: C
            names: {A: B}
          - fork: C
            child: D
          - fault: P/A
          - write: C/B
            pages: [2, 0]
          - fault: C/B
            pages: none
          - write: C
            addr: 0x10123
          - mprotect: P/A
            prot: r
            offset: 1
            pages: 2
            names: [A2, A3]
          - munmap: C
            start: 0x10000
            end: 0x11000
          - munmap: C/B
            offset: 3
          - madvise: D
            start: 0x10000
            pages: 4
            advice: dontfork
          - mmap: D
            name: N
            start: 0x40000
            end: 0x42000
            prot: ""
            shared: yes
          - exit: D
        """))
    assert got.steps == (
        Snapshot("start", line=7),
        Fork("P", "C", (("A", "B"),), line=8),
        Fork("C", "D", None, line=11),
        Fault("P", "A", "all", kind="fault", line=13),
        Fault("C", "B", (2, 0), kind="write", line=14),
        Fault("C", "B", "none", kind="fault", line=16),
        Fault("C", None, (), addr=0x10123, kind="write", line=18),
        Mprotect(Target("P", "A", 1, 3), R, ("A2", "A3"), line=20),
        Munmap(Target("C", None, 0x10000, 0x11000), line=25),
        Munmap(Target("C", "B", 3, None), line=28),
        Madvise(Target("D", None, 0x10000, 0x14000), "dontfork", line=30),
        Mmap("D", VmaSpec("N", 0x40000, 0x42000, NONE, NONE, shared=True, line=34), line=34),
        Exit("D", line=40),
    )


def test_every_expectation_kind() -> None:
    got = loads(HEAD + doc("""\
        steps:
          - fork: P
            child: C
        expect:
          - same_anon_vma: [P/A, C/A]
          - different_anon_vma: [P/A, C/A, C/X]
            policy: degree
          - anon_vma: {C/A: AV1, P/A: null}
          - chain: {C/A: [AV1, AV0], P/X: []}
            policies: [degree, v2]
          - findings: [I2, VM_WARN_ON]
          - no_findings: true
          - freed: [AV1]
        """))
    assert got.expectations == (
        Expectation("same_anon_vma", ("P/A", "C/A"), None, line=10),
        Expectation("different_anon_vma", ("P/A", "C/A", "C/X"), ("degree",), line=11),
        Expectation("anon_vma", (("C/A", "AV1"), ("P/A", None)), None, line=13),
        Expectation("chain", (("C/A", ("AV1", "AV0")), ("P/X", ())), ("degree", "v2"), line=14),
        Expectation("findings", ("I2", "VM_WARN_ON"), None, line=16),
        Expectation("no_findings", True, None, line=17),
        Expectation("freed", ("AV1",), None, line=18),
    )


def test_nulls_mean_absent_and_aliases_work() -> None:
    got = loads(doc("""\
        description: x
        policies:
        processes:
          - name: P
            vmas:
              - &vma {name: A, start: 0x1000, pages: 1, flags: , file: , anon_vma: , faulted: }
          - name: Q
            vmas: [*vma]
        steps:
        expect:
        """))
    a = VmaSpec("A", 0x1000, 0x2000, RW, NONE, line=6)
    assert got.processes == (ProcessSpec("P", (a,), line=4), ProcessSpec("Q", (a,), line=7))


def test_load_reads_a_file_and_names_the_scenario(tmp_path) -> None:
    path = tmp_path / "fork-reuse.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + SEED.encode())
    got = load(str(path))
    assert got.name == "fork-reuse" and got.path == str(path)
    assert got == loads(SEED, str(path))


ROOT = Path(__file__).resolve().parent.parent


def test_the_documented_example_loads() -> None:
    text = (ROOT / "docs" / "scenario-format.md").read_text()
    examples = [b for b in re.findall(r"```yaml\n(.*?)```", text, re.S)
                if b.startswith("description:")]
    assert examples
    for example in examples:
        got = loads(example, "seed-thread.yaml")
        assert [v.name for v in got.processes[0].vmas] == [f"SRC{i}" for i in range(1, 6)]
        assert got.steps[0] == Fork("P", "C", tuple(f"DST{i}" for i in range(1, 6)),
                                    line=got.steps[0].line)


@pytest.mark.parametrize("path", sorted(str(p.relative_to(ROOT))
                                        for p in (ROOT / "scenarios").rglob("*.yaml")))
def test_shipped_scenarios_load(path: str) -> None:
    assert load(str(ROOT / path)).processes


# -- errors ---------------------------------------------------------------------------------------

def vma(extra: str) -> str:
    return doc("""\
        description: x
        processes:
          - name: P
            vmas:
              - {name: A, start: 0x10000, %s}
        """) % extra


def step(body: str) -> str:
    return HEAD + "steps:\n" + textwrap.indent(doc(body), "  ")


ERRORS = [
    # YAML itself
    ("", 1, "empty file"),
    ("# only a comment\n", 1, "empty file"),
    ("description: [x\n", 2, "YAML syntax error"),
    ("a: 1\n\tb: 2\n", 2, "YAML syntax error"),
    ("description: x\x07\n", 1, "unacceptable character U+0007"),
    ("- 1\n- 2\n", 1, "the top level must be a mapping"),
    ("description: x\nprocesses: [{name: P}]\n---\nx: 1\n", 3, "YAML syntax error"),
    ("description: x\ndescription: y\nprocesses: [{name: P}]\n", 2,
     "duplicate key 'description' (first at line 1)"),
    ("description: x\nprocesses: [{name: P, name: Q}]\n", 2, "processes[0]: duplicate key 'name'"),
    ("description: x\nprocesses: [{name: P}]\n<<: {a: 1}\n", 3, "merge keys"),
    ("description: x\nprocesses: [{name: P}]\n3: x\n", 3, "keys must be strings"),
    ("description: !foo x\nprocesses: [{name: P}]\n", 1, "unsupported YAML tag '!foo'"),
    # top level
    ("processes: [{name: P}]\n", 1, "missing required key 'description'"),
    ("description: x\n", 1, "missing required key 'processes'"),
    ("description: x\nprocesses: [{name: P}]\nsteps: []\nexpects: []\n", 4,
     "unknown key 'expects' (expected one of: description, policies, processes, steps, expect)"),
    ("description: 12\nprocesses: [{name: P}]\n", 1,
     "'description' must be a non-empty string, got an integer (12); quote it"),
    ("description: '  '\nprocesses: [{name: P}]\n", 1, "'description' must be a non-empty"),
    ("description: x\nprocesses: []\n", 2, "'processes' must list at least one process"),
    ("description: x\nprocesses: {P: 1}\n", 2, "'processes' must be a non-empty list"),
    ("description: x\npolicies: []\nprocesses: [{name: P}]\n", 2, "'policies' must not be empty"),
    ("description: x\npolicies: [degree, '']\nprocesses: [{name: P}]\n", 2,
     "policies[1]: must be a non-empty string"),
    # processes
    ("description: x\nprocesses:\n  - name: P\n  - name: P\n", 4,
     "processes[1]: process name 'P' is already used at line 3"),
    ("description: x\nprocesses: [{name: P/Q}]\n", 2, "'P/Q' is not a valid process name"),
    ("description: x\nprocesses: [{name: yes}]\n", 2,
     "'name' must be a process name, got a boolean (yes); quote it"),
    ("description: x\nprocesses: [{name: P, vma: []}]\n", 2,
     "processes[0]: unknown key 'vma' (expected one of: name, vmas)"),
    # VMAs
    (vma("pages: 1, prto: r"), 5, "processes[0].vmas[0]: unknown key 'prto'"),
    (vma("pages: 0"), 5, "'pages' 0 must be >= 1"),
    (vma("pages: true"), 5, "'pages' must be an integer, got a boolean (true)"),
    (vma("pages: 1.0"), 5, "'pages' must be an integer, got a float (1.0)"),
    (vma("pages: '1'"), 5, "got a string ('1'); remove the quotes"),
    (vma("pages: !!int x1"), 5, "'pages' is not a valid int"),
    (vma("pages: 1, end: 0x11000"), 5, "'end' and 'pages' both given"),
    (vma("prot: r"), 5, "needs one of 'pages' (a count) and 'end'"),
    (vma("end: 0x10000"), 5, "'end' 0x10000 must be above 'start' 0x10000"),
    (vma("end: 0x10800"), 5, "'end' 0x10800 is not page aligned (4096)"),
    (vma("end: 0x900000000000"), 5, "beyond TASK_SIZE"),
    (vma("pages: 0x800000000"), 5, "beyond TASK_SIZE"),
    (vma("pages: 1, prot: rwq"), 5, "'prot' 'rwq' is not a protection"),
    (vma("pages: 1, prot: rr"), 5, "'prot' 'rr' is not a protection"),
    (vma("pages: 1, prot: "), 5, "write 'none' for no access"),
    (vma("pages: 1, flags: [dontcopy, huge]"), 5,
     "vmas[0].flags[1]: unknown flag 'huge' (expected one of: dontcopy, wipeonfork, account, "),
    (vma("pages: 1, flags: [dontcopy, dontcopy]"), 5, "flag 'dontcopy' is listed twice"),
    (vma("pages: 1, flags: dontcopy"), 5, "'flags' must be a list of VMA flags"),
    (vma("pages: 1, shared: 'true'"), 5, "'shared' must be a boolean"),
    (vma("pages: 1, file: ''"), 5, "'file' must be a non-empty string"),
    (vma("pages: 2, faulted: [0, 2]"), 5, "faulted[1]: page offset 2 is outside the VMA (2 pages)"),
    (vma("pages: 2, faulted: [1, 1]"), 5, "faulted[1]: page offset 1 is listed twice"),
    (vma("pages: 2, faulted: [-1]"), 5, "faulted[0]: -1 must be >= 0"),
    (vma("pages: 2, faulted: 1"), 5, "'faulted' must be a boolean or a list of page offsets"),
    (vma("pages: 1048577, faulted: true"), 5,
     "faulting all 1048577 pages is not supported (at most 1048576); list the page offsets"),
    (vma("pages: 1, anon_vma: AV0"), 5, "'anon_vma' 'AV0' needs 'faulted'"),
    (vma("pages: 1, faulted: false, anon_vma: AV0"), 5, "'anon_vma' 'AV0' needs 'faulted'"),
    (vma("pages: 1, faulted: true, anon_vma: 0AV"), 5, "'0AV' is not a valid anon_vma label"),
    (vma("pages: 1, shared: true, faulted: true"), 5,
     "'faulted' is not possible on a shared VMA: shared mappings never get an anon_vma"),
    (vma("pages: 1, shared: true, faulted: [0], anon_vma: AV0"), 5,
     "shared mappings never get an anon_vma"),
    (vma("pages: 1").replace("0x10000", "0x10001"), 5,
     "processes[0].vmas[0]: 'start' 0x10001 is not page aligned (4096)"),
    (vma("pages: 1").replace("0x10000", "0"), 5, "'start' 0x0 must be >= 0x1000"),
    (HEAD + "      - {name: B, start: 0x8000, pages: 9}\n", 6,
     "processes[0].vmas[1]: VMA 'B' [0x8000, 0x11000) overlaps VMA 'A' [0x10000, 0x14000) "
     "(line 5)"),
    (HEAD + "      - {name: A, start: 0x20000, pages: 1}\n", 6,
     "VMA name 'A' is already used in process 'P' at line 5"),
    (HEAD + "      - {name: B, start: 0x20000, pages: 1, file: f, faulted: true, anon_vma: AV0}\n",
     6, "VMAs sharing anon_vma label 'AV0' must agree on 'file': 'B' maps 'f' but 'A' (line 5) "
        "is anonymous"),
    (HEAD + "  - name: Q\n    vmas:\n      - {name: A, start: 0x10000, pages: 1, faulted: true, "
            "anon_vma: AV0}\n", 8,
     "processes[1].vmas[0]: anon_vma label 'AV0' is used in processes P and Q: anon_vmas are "
     "never shared across processes in a starting layout; describe the fork as a step"),
    # steps
    (HEAD + "steps: {fork: P}\n", 6, "'steps' must be a list of steps"),
    (step("- frok: P\n"), 7, "steps[0]: step has no kind (expected exactly one of: fork, exit, "
                            "fault, write, mprotect, munmap, mmap, madvise, split, setflags, "
                            "merge, snapshot, "),
    (step("- P\n"), 7, "steps[0]: must be a mapping with one of the keys fork, exit"),
    (step("- fork: P\n  exit: P\n"), 8, "step has more than one kind: fork, exit"),
    (step("- fork: P\n  chlid: C\n"), 8,
     "steps[0].fork: unknown key 'chlid' (expected one of: child, names, enomem, fork)"),
    (step("- fork: P\n"), 7, "steps[0].fork: missing required key 'child'"),
    (step("- fork: Q\n  child: C\n"), 7,
     "steps[0].fork: 'Q' is not a process at this step (processes at this step: P)"),
    (step("- fork: P\n  child: P\n"), 8, "'child' 'P' is already a process (since line 3)"),
    (step("- fork: P\n  child: C\n- fork: P\n  child: C\n"), 10,
     "steps[1].fork: 'child' 'C' is already a process (since line 7)"),
    (step("- exit: P\n- write: P/A\n"), 8,
     "steps[1].write: 'P' is not a process at this step (it exited at line 7)"),
    (step("- fork: P\n  child: C\n  names: [X, X]\n"), 9, "names[1]: VMA name 'X' is listed twice"),
    (step("- fork: P\n  child: C\n  names: {A: X, B: X}\n"), 9,
     "child name 'X' is also given to 'A'"),
    (step("- fork: P\n  child: C\n  names: X\n"), 9,
     "'names' must be a list of child VMA names or a mapping"),
    (step("- fault: P\n"), 7, "steps[0].fault: a fault on 'P' needs 'addr'"),
    (step("- fault: P\n  addr: 0x1000\n  pages: all\n"), 9, "'pages' needs a VMA target"),
    (step("- fault: P/A\n  addr: 0x1000\n"), 8, "'addr' is only for a process target"),
    (step("- write: P/A\n  pages: some\n"), 8,
     "steps[0].write: 'pages' must be 'all', 'none' or a list of page offsets, got 'some'"),
    (step("- write: P/A\n  pages: [1, 1]\n"), 8, "pages[1]: page offset 1 is listed twice"),
    (step("- write: P/A/B\n"), 7, "'A/B' is not a valid VMA name"),
    (step("- write: 3\n"), 7, "steps[0].write: must be a string 'PROCESS' or 'PROCESS/VMA', got "
                             "an integer (3)"),
    (step("- mprotect: P/A\n"), 7, "steps[0].mprotect: missing required key 'prot'"),
    (step("- mprotect: P/A\n  prot: rwxr\n"), 8, "'prot' 'rwxr' is not a protection"),
    (step("- munmap: P/A\n  start: 0x10000\n"), 8,
     "'start' is for a process target ('P'); inside VMA 'A' use 'offset' and 'pages'"),
    (step("- munmap: P\n  offset: 1\n"), 8, "'offset' is for a VMA target"),
    (step("- munmap: P\n  pages: 1\n"), 7, "needs 'start' and one of 'end' and 'pages'"),
    (step("- munmap: P\n  start: 0x10000\n"), 7, "needs one of 'end' and 'pages' with 'start'"),
    (step("- munmap: P\n  start: 0x10000\n  end: 0x10000\n"), 9,
     "'end' 0x10000 must be above 'start' 0x10000"),
    (step("- munmap: P\n  start: 0x10010\n  pages: 1\n"), 8, "0x10010 is not page aligned"),
    (step("- munmap: P/A\n  offset: -1\n"), 8, "'offset' -1 must be >= 0"),
    (step("- madvise: P/A\n  advice: hugepage\n"), 8,
     "'advice' 'hugepage' is not known (expected one of: dontfork, dofork, wipeonfork, "
     "keeponfork)"),
    (step("- madvise: P/A\n"), 7, "missing required key 'advice'"),
    (step("- mmap: P\n  name: N\n  start: 0x1000\n  pages: 1\n  faulted: true\n"), 11,
     "unknown key 'faulted' (expected one of: name, start, pages, end, prot, flags, shared, "
     "file, offset, vma_merge, enomem, mmap); mmap makes an unfaulted VMA"),
    (step("- mmap: P\n  name: N\n"), 7, "steps[0].mmap: missing required key 'start'"),
    (step("- mmap: P\n  name: N\n  start: 0x1001\n  pages: 1\n"), 9, "not page aligned"),
    (step("- snapshot: final\n"), 7, "'final' is reserved"),
    (step("- snapshot: s\n- snapshot: s\n"), 8, "label 's' is already used at line 7"),
    (step("- snapshot: s\n  pages: 1\n"), 8, "unknown key 'pages' (expected one of: snapshot)"),
    # expectations
    (HEAD + "expect:\n  - same_anon_vma: [P/A]\n", 7,
     "expect[0]: 'same_anon_vma' must list at least 2"),
    (HEAD + "expect:\n  - different_anon_vma: [P/A, P/A]\n", 7, "'P/A' is listed twice"),
    (HEAD + "expect:\n  - same_anon_vma: [P/A, Q/A]\n", 7,
     "same_anon_vma[1]: 'Q' is not a process after the last step"),
    (HEAD + "expect:\n  - same_anon_vma: [P/A, P]\n", 7, "'P' must be 'PROCESS/VMA'"),
    (HEAD + "steps:\n  - exit: P\nexpect:\n  - freed: [AV0]\n  - anon_vma: {P/A: AV0}\n", 10,
     "'P' is not a process after the last step (it exited at line 7)"),
    (HEAD + "expect:\n  - findings: [I2]\n    freed: [AV1]\n", 8,
     "an expectation needs exactly one of: same_anon_vma"),
    (HEAD + "expect:\n  - policy: degree\n", 7, "(got none)"),
    (HEAD + "expect:\n  - freed: [AV1]\n    policy: a\n    policies: [b]\n", 8,
     "give 'policy' or 'policies', not both"),
    (HEAD + "expect:\n  - no_findings: false\n", 7, "'no_findings' only takes true"),
    (HEAD + "expect:\n  - chain: {P/A: AV0}\n", 7,
     "expect[0].chain: 'P/A' must be a list of anon_vma names"),
    (HEAD + "expect:\n  - anon_vma: {}\n", 7, "must map at least one 'PROCESS/VMA'"),
    (HEAD + "expect:\n  - findings: []\n", 7, "must list at least 1 finding id"),
    (HEAD + "expect:\n  - frees: [AV1]\n", 7, "unknown key 'frees'"),
]


@pytest.mark.parametrize("text,line,message", ERRORS)
def test_errors(text: str, line: int, message: str) -> None:
    e = error(text)
    assert str(e).startswith(f"t.yaml:{line}:"), str(e)
    assert message in str(e)
    assert e.path == "t.yaml" and e.line == line
    assert "\n" not in str(e)


def test_syntax_errors_carry_a_column() -> None:
    e = error("description: x\nprocesses: {a: 1\nsteps: []\n")
    assert str(e) == "t.yaml:3:6: YAML syntax error: while parsing a flow mapping expected ',' " \
        "or '}', but got ':'"


def test_missing_file(tmp_path) -> None:
    path = str(tmp_path / "nope.yaml")
    with pytest.raises(ScenarioError, match="no such file") as info:
        load(path)
    assert str(info.value) == f"{path}: no such file"


def test_directory(tmp_path) -> None:
    with pytest.raises(ScenarioError, match="is a directory"):
        load(str(tmp_path))


def test_not_utf8(tmp_path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"description: x\nprocesses:\n  - name: P\xe9\n")
    with pytest.raises(ScenarioError) as info:
        load(str(path))
    assert str(info.value) == f"{path}:3:12: not valid UTF-8 (byte 0xe9)"


def test_empty_file(tmp_path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_bytes(b"")
    with pytest.raises(ScenarioError, match=r":1: empty file"):
        load(str(path))


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    assert "nested too deeply" in str(error("[" * 5000 + "]" * 5000))


def test_deep_nesting_names_the_line_where_it_gets_too_deep() -> None:
    flow = error("description: x\nprocesses: " + "[" * 5000 + "]" * 5000)
    assert (flow.line, flow.message) == (
        2, "YAML nested too deeply (more than 100 levels of lists and mappings)")
    block = "description: x\nprocesses:\n" + "".join(
        " " * (2 * i) + "-\n" for i in range(1, 3000))
    assert error(block).line == 2 + 101


def test_recursive_alias_is_harmless() -> None:
    e = error("description: x\nprocesses: &p [{name: P, vmas: *p}]\n")
    assert e.line == 2 and "vmas[0]" in str(e)


# -- fuzzing --------------------------------------------------------------------------------------

FUZZ_PATH = "fuzz/case.yaml"
LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")
VOCABULARY = TOP_KEYS + VMA_KEYS + STEP_KINDS + EXPECT_KINDS + (
        "child", "names", "addr", "offset", "advice", "policy", "P", "C", "P/A", "C/A", "AV0",
        "rw", "r", "none", "all", "dontcopy", "wipeonfork", "dontfork", "final", "<<", "")

scalars = (st.none() | st.booleans() | st.integers(-2, 1 << 48)
           | st.sampled_from([0x1000, 0x10000, 4095, 1 << 47, 1 << 20, 1.5, "0x1000", 1 << 300,
                              -(1 << 300), 10 ** 4000])
           | st.sampled_from(VOCABULARY) | st.text(max_size=8))
keys = st.sampled_from(VOCABULARY) | st.text(max_size=6)
trees = st.recursive(scalars, lambda kids: st.lists(kids, max_size=4)
                     | st.dictionaries(keys, kids, max_size=5), max_leaves=30)
top_documents = st.dictionaries(st.sampled_from(TOP_KEYS) | keys, trees, max_size=6)

VALID = yaml.safe_load(SEED + doc("""\
    steps:
      - fork: P
        child: C
        names: {SRC1: DST1}
      - write: C/DST1
        pages: [0]
      - mprotect: C/DST1
        prot: r
      - munmap: P
        start: 0x10000
        pages: 1
      - madvise: C/DST1
        advice: dontfork
      - mmap: C
        name: N
        start: 0x40000
        pages: 2
      - snapshot: s
      - exit: C
    """))


def check(text: str) -> None:
    """The only exception ``loads`` may raise is ScenarioError, as one line naming the file."""
    try:
        got = loads(text, FUZZ_PATH)
    except ScenarioError as e:
        message = str(e)
        assert message.startswith(FUZZ_PATH + ":")
        assert "\n" not in message and "\r" not in message
        if e.line is not None:   # YAML breaks lines at \r, \x85, \u2028 too
            assert 1 <= e.line <= len(LINE_BREAK.findall(text)) + 2
        return
    assert isinstance(got, Scenario) and got.processes
    for process in got.processes:
        for a, b in zip(process.vmas, process.vmas[1:]):
            assert a.end <= b.start


def dump(tree: object) -> str:
    return yaml.safe_dump(tree, default_flow_style=None, sort_keys=False, allow_unicode=True)


#: ANONDIFF_FUZZ_EXAMPLES=20000 for a longer run; no example database is kept in the tree.
EXAMPLES = int(os.environ.get("ANONDIFF_FUZZ_EXAMPLES", "250"))
FAST = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@FAST
@given(trees)
def test_fuzz_random_trees(tree: object) -> None:
    check(dump(tree))


@FAST
@given(top_documents)
def test_fuzz_random_top_level(document: dict) -> None:
    check(dump(document))


def mutate(data: st.DataObject, tree: object) -> object:
    """Change one spot of *tree*: drop a key, replace a value by another type, or swap values."""
    if not isinstance(tree, (dict, list)) or not tree or data.draw(st.integers(0, 3)) == 0:
        return data.draw(trees)
    slots = list(tree) if isinstance(tree, dict) else list(range(len(tree)))
    slot = data.draw(st.sampled_from(slots))
    op = data.draw(st.sampled_from(["descend", "drop", "replace", "swap", "add"]))
    tree = dict(tree) if isinstance(tree, dict) else list(tree)
    if op == "descend":
        tree[slot] = mutate(data, tree[slot])
    elif op == "drop":
        del tree[slot]
    elif op == "replace":
        tree[slot] = data.draw(scalars)
    elif op == "swap":
        other = data.draw(st.sampled_from(slots))
        tree[slot], tree[other] = tree[other], tree[slot]
    elif isinstance(tree, dict):
        tree[data.draw(keys)] = data.draw(trees)
    else:
        tree.insert(slot, data.draw(trees))
    return tree


@FAST
@given(st.data())
def test_fuzz_mutated_valid_document(data: st.DataObject) -> None:
    check(dump(VALID))
    tree: object = VALID
    for _ in range(data.draw(st.integers(1, 3))):
        tree = mutate(data, tree)
    check(dump(tree))


TEXT = dump(VALID)


@FAST
@given(st.data())
def test_fuzz_mangled_text(data: st.DataObject) -> None:
    text = data.draw(st.sampled_from([TEXT, SEED]))
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(text)))
        op = data.draw(st.sampled_from(["insert", "truncate", "cut", "dup"]))
        if op == "insert":
            junk = data.draw(st.text(st.characters(codec="utf-8"), min_size=1, max_size=5)
                             | st.sampled_from(["\t", "\0", "\n- ", ": ", "&a ", "*a", "!!int ",
                                                "{", "]", "'", "\ufeff", "\r"]))
            text = text[:at] + junk + text[at:]
        elif op == "truncate":
            text = text[:at]
        elif op == "cut":
            text = text[:at] + text[at + data.draw(st.integers(1, 20)):]
        else:
            line = text[at:].partition("\n")[0]
            text = text[:at] + line + "\n" + text[at:]
    check(text)


@settings(max_examples=max(EXAMPLES // 3, 1), deadline=None, database=None)
@given(st.binary(max_size=8), st.integers(0, len(SEED)))
def test_fuzz_bytes_through_load(tmp_path_factory, junk: bytes, at: int) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "case.yaml"
    raw = SEED.encode()
    path.write_bytes(raw[:at] + junk + raw[at:])
    try:
        load(str(path))
    except ScenarioError as e:
        assert str(e).startswith(str(path) + ":") and "\n" not in str(e)


# -- kernel-internal steps: split, setflags, merge -----------------------------------------------

LOW_LEVEL = """\
description: low-level steps
processes:
  - name: P
    vmas:
      - {name: A, start: 0x10000, pages: 4, faulted: true}
steps:
  - {split: P/A, at: 1, new: B}
  - {split: P/B, at: 2, new: C, new_below: true}
  - {setflags: P/B, set: [dontcopy], clear: [write]}
  - {merge: P, lo: A, hi: C}
"""


def test_low_level_steps_load() -> None:
    from anondiff.scenario import Merge, SetFlags, Split
    steps = loads(LOW_LEVEL, "ll.yaml").steps
    assert steps == (
        Split("P", "A", 1, "B", False, line=7),
        Split("P", "B", 2, "C", True, line=8),
        SetFlags("P", "B", frozenset({"dontcopy"}), frozenset({"write"}), line=9),
        Merge("P", "A", "C", line=10),
    )


@pytest.mark.parametrize("step,message", [
    ("{split: P/A, new: B}", "'at'"),
    ("{split: P/A, at: 0, new: B}", "at"),
    ("{split: P, at: 1, new: B}", "split needs a VMA"),
    ("{split: P/A, at: 1, new: A}", "must differ"),
    ("{setflags: P/A}", "needs 'set' or 'clear'"),
    ("{setflags: P/A, set: [shared]}", "'shared' is not known"),
    ("{setflags: P/A, set: [write], clear: [write]}", "both set and cleared"),
    ("{merge: P, lo: A}", "'hi'"),
    ("{merge: P, lo: A, hi: A}", "must differ"),
])
def test_low_level_step_errors(step: str, message: str) -> None:
    text = LOW_LEVEL.split("steps:")[0] + "steps:\n  - " + step + "\n"
    with pytest.raises(ScenarioError) as e:
        loads(text, "ll.yaml")
    assert str(e.value).startswith("ll.yaml:7")
    assert message in str(e.value)


def test_libyaml_and_pure_python_parsers_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    """The C parser is only a faster road to the same Scenario (and the same errors)."""
    import anondiff.yamlnodes as loader
    if loader._FAST_LOADER is None:
        pytest.skip("PyYAML without libyaml")
    root = Path(__file__).resolve().parent.parent
    files = sorted(root.glob("scenarios/**/*.yaml"))
    fast = [loads(f.read_text(), str(f)) for f in files]
    monkeypatch.setattr(loader, "_FAST_LOADER", None)
    assert fast == [loads(f.read_text(), str(f)) for f in files]
