"""The spawn step (a new, empty process mid-scenario) and process names reused after exit."""
from __future__ import annotations

import pytest

from anondiff.engine import replay
from anondiff.errors import ReplayError, ScenarioError
from anondiff.expect import verify
from anondiff.scenario import Spawn, loads

HEAD = """description: x
processes:
  - name: P
    vmas:
      - {name: A, start: 0x10000, pages: 1, faulted: true, anon_vma: AV0}
steps:
"""


def test_spawn_loads() -> None:
    sc = loads(HEAD + "  - {spawn: Q}\n  - {mmap: Q, name: B, start: 0x20000, pages: 1}\n", "s.yaml")
    assert sc.steps[0] == Spawn("Q", line=7)


@pytest.mark.parametrize("policy", ["always-new", "degree", "split-counters", "clone-rework-2026"])
def test_a_spawned_process_starts_empty_and_lives_like_any(policy: str) -> None:
    sc = loads(HEAD + "  - {spawn: Q}\n  - {snapshot: empty}\n"
               "  - {mmap: Q, name: B, start: 0x10000, pages: 1}\n  - {write: Q/B}\n"
               "  - {fork: Q, child: R}\n", "s.yaml")
    rep = replay(sc, policy)
    assert rep.snapshots[0].process("Q").vmas == ()
    final = rep.final
    assert [p.name for p in final.processes] == ["P", "Q", "R"]
    # Q's anon_vma is a root of its own: nothing links it to P's AV0
    b = final.vma("Q/B")
    assert b.anon_vma not in ("AV0", None) and final.anon_vma(b.anon_vma).root == b.anon_vma
    assert final.anon_vma(final.vma("R/B").anon_vma).root == b.anon_vma


@pytest.mark.parametrize("policy", ["degree", "split-counters", "clone-rework-2026"])
def test_a_name_is_free_again_after_exit(policy: str) -> None:
    """C exits; a later fork child (or spawn) may be called C: expectations about C mean the
    process alive after the last step, and the old C's anon_vmas are gone with it."""
    text = (HEAD + "  - {fork: P, child: C}\n  - {exit: C}\n  - {fork: P, child: C}\n"
            "  - {exit: C}\n  - {spawn: C}\n"
            "expect:\n  - {anon_vma: {P/A: AV0}}\n  - no_findings: true\n")
    sc = loads(text, "s.yaml")
    final = replay(sc, policy).final
    assert [(p.name, len(p.vmas)) for p in final.processes] == [("P", 1), ("C", 0)]
    assert all(v.ok for v in verify(sc.expectations, {policy: final}))
    # two children came and went: their own anon_vmas (one each) were freed
    assert sum(a.freed for a in final.anon_vmas) == 2
    assert not [f for f in final.findings if f.kind not in ("NOTE", "MERGED")]


@pytest.mark.parametrize("text,line,message", [
    (HEAD + "  - {spawn: P}\n", 7, "steps[0].spawn: 'P' is already a process (since line 3)"),
    (HEAD + "  - {spawn: Q, vmas: []}\n", 7, "unknown key 'vmas'"),
    (HEAD + "  - {spawn: 1Q}\n", 7, "not a valid process name"),
    (HEAD + "  - {spawn: Q}\n  - {spawn: Q}\n", 8, "'Q' is already a process (since line 7)"),
])
def test_spawn_errors(text: str, line: int, message: str) -> None:
    with pytest.raises(ScenarioError) as e:
        loads(text, "s.yaml")
    assert str(e.value).startswith(f"s.yaml:{line}:"), str(e.value)
    assert message in str(e.value)


def test_an_expectation_cannot_name_an_exited_process() -> None:
    with pytest.raises(ScenarioError, match="'C' is not a process after the last step"):
        loads(HEAD + "  - {spawn: C}\n  - {exit: C}\nexpect:\n  - {anon_vma: {C/A: null}}\n",
              "s.yaml")
