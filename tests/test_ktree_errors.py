"""A tree that cannot be compiled, or whose code crashes: one line, exit 2, or a reported crash.

Each test copies the files the cut needs from Debian's 6.1 tree into a temporary directory,
edits one of them as a patch under review might, and runs the CLI on it.  Skipped without gcc
or the tarball (see test_ktree_equivalence.py).
"""
from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from anondiff.cli import main
from anondiff.ktree import recipe

from .test_ktree_equivalence import tarball

ROOT = Path(__file__).parent.parent
SEED = str(ROOT / "scenarios" / "seed-thread.yaml")
FILES = sorted({f for section in recipe.SECTIONS for item in section for f in item.files}
               | set(recipe.HEADER_COPIES) | set(recipe.EXTRA_UNITS) | {"Makefile"})


@pytest.fixture(scope="module")
def tree61() -> Path:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed (Debian package gcc)")
    path = tarball("6.1")
    if path is None:
        pytest.skip("no linux-source-6.1.tar.xz in ~/.cache/anondiff/debian/")
    from anondiff.ktree.source import open_tree, parse_spec
    spec = parse_spec(str(path))
    assert spec is not None
    return open_tree(spec).root


def copy_tree(src: Path, dst: Path, edit: tuple[str, str, str] | None = None) -> Path:
    for rel in FILES:
        if (src / rel).is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / rel, dst / rel)
    if edit is not None:
        rel, old, new = edit
        text = (dst / rel).read_text()
        assert old in text, f"{old!r} not in {rel}"
        (dst / rel).write_text(text.replace(old, new, 1))
    return dst


def run(tree: Path, scenario: str = SEED):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, ["run", scenario, "-p", str(tree), "--final-only"])


def test_the_copy_itself_works(tree61: Path, tmp_path: Path) -> None:
    result = run(copy_tree(tree61, tmp_path))
    assert result.exit_code == 0, result.output
    assert "== 6.1.176" in result.output


def test_a_directory_that_is_not_a_whole_tree(tmp_path: Path) -> None:
    """A Makefile and an empty mm/ look like a tree, but hold no code: the message says the
    file is missing, not that the struct is missing from it."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed (Debian package gcc)")
    (tmp_path / "mm").mkdir()
    (tmp_path / "Makefile").write_text("VERSION = 6\n")
    result = run(tmp_path)
    assert result.exit_code == 2
    assert result.output == ("anondiff: struct anon_vma: tree 6 has no include/linux/rmap.h: "
                             "not a whole kernel source tree?\n")


def test_function_not_found(tree61: Path, tmp_path: Path) -> None:
    tree = copy_tree(tree61, tmp_path, ("mm/rmap.c", "int anon_vma_fork(", "int anon_vma_fork_renamed("))
    result = run(tree)
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "anondiff: anon_vma_fork: not found in mm/rmap.c of tree 6.1.176"]


def test_gcc_error_names_the_function(tree61: Path, tmp_path: Path) -> None:
    tree = copy_tree(tree61, tmp_path, ("mm/rmap.c", "\tanon_vma = find_mergeable_anon_vma(vma);",
                                        "\tanon_vma = find_mergeable_anon_vma(vma)"))
    result = run(tree)
    assert result.exit_code == 2
    line = result.output.strip()
    assert "\n" not in line
    assert re.match(r"anondiff: tree 6\.1\.176: gcc: mm/rmap\.c:\d+ \(in __anon_vma_prepare\): "
                    r"error: expected ';'", line), line


def test_symbol_the_shim_lacks(tree61: Path, tmp_path: Path) -> None:
    tree = copy_tree(tree61, tmp_path, ("mm/rmap.c", "\tmight_sleep();\n\n\tavc = anon_vma_chain_alloc",
                                        "\tlockdep_assert_held(&mm->page_table_lock);\n\n\tavc = anon_vma_chain_alloc"))
    result = run(tree)
    assert result.exit_code == 2
    line = result.output.strip()
    assert re.match(r"anondiff: tree 6\.1\.176: lockdep_assert_held: used by mm/rmap\.c:\d+ "
                    r"\(in __anon_vma_prepare\) but not supplied by the shim; define it in "
                    r"\S+ktshim\.h", line), line


def test_tree_too_old(tree61: Path, tmp_path: Path) -> None:
    """struct anon_vma with neither num_children nor degree: a tree before v3.19."""
    tree = copy_tree(tree61, tmp_path, ("include/linux/rmap.h", "\tunsigned long num_children;",
                                        "\tunsigned long kt_neither;"))
    result = run(tree)
    assert result.exit_code == 2
    assert "before v3.19 (commit 7a3ef208e662), too old for this shim" in result.output
    assert "\n" not in result.output.strip()


def test_neighbour_lookup_unknown(tree61: Path, tmp_path: Path) -> None:
    """find_mergeable_anon_vma() with neither a maple state nor vm_next/vm_prev."""
    tree = copy_tree(tree61, tmp_path, ("mm/mmap.c", "\tMA_STATE(mas, &vma->vm_mm->mm_mt, vma->vm_end, vma->vm_end);\n",
                                        "\tstruct ma_state mas;\n"))
    result = run(tree)
    assert result.exit_code == 2
    assert "reads neither a maple tree nor vm_next/vm_prev" in result.output
    assert "\n" not in result.output.strip()


def test_null_dereference_is_a_crash_at_its_step(tree61: Path, tmp_path: Path) -> None:
    """A patch that makes anon_vma_fork() dereference NULL: the replay ends with a crash at
    the fork, as for a Python policy, and anondiff goes on."""
    tree = copy_tree(tree61, tmp_path, ("mm/rmap.c", "\terror = anon_vma_clone(vma, pvma);",
                                        "\terror = anon_vma_clone(vma, NULL);"))
    result = CliRunner().invoke(main, ["run", SEED, "-p", str(tree), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert "CRASH" in result.output
    assert "anon_vma_fork: NULL pointer dereference" in result.output
    again = run(copy_tree(tree61, tmp_path / "clean"))
    assert again.exit_code == 0


def test_use_after_free_is_a_crash_naming_the_anon_vma(tree61: Path, tmp_path: Path) -> None:
    """A patch that reads an anon_vma after anon_vma_free(): the freed slab page is PROT_NONE,
    so the read faults and the crash names the freed anon_vma."""
    tree = copy_tree(tree61, tmp_path, ("mm/rmap.c", "\tif (root != anon_vma && atomic_dec_and_test",
                                        "\tif (anon_vma->root != anon_vma && atomic_dec_and_test"))
    result = run(tree, str(ROOT / "scenarios" / "kernel-runs" / "check1b_kk_v1_uaf.yaml"))
    assert result.exit_code == 0, result.output
    assert re.search(r"CRASH .*: unlink_anon_vmas: use after free of AV\d+ \(the tree's code "
                     r"touched freed slab object at 0x[0-9a-f]+, SIGSEGV\)", result.output), result.output


def test_a_crash_leaves_the_anon_vmas_as_the_code_left_them(tree61: Path,
                                                              tmp_path: Path) -> None:
    """unlink_anon_vmas() crashing just after anon_vma->parent->num_children--: the parent's
    counter is the decremented one, as in a Python policy that raises there, not the one from
    before the call (which, beside the chains already taken out of the tree, made a spurious
    I4 finding)."""
    tree = copy_tree(tree61, tmp_path / "tree", (
        "mm/rmap.c", "\t\t\tanon_vma->parent->num_children--;\n",
        "\t\t\tanon_vma->parent->num_children--;\n"
        "\t\t\tif (anon_vma->parent != anon_vma)\n"
        "\t\t\t\t((struct anon_vma *)NULL)->num_children++;\n"))
    scenario = tmp_path / "s.yaml"
    scenario.write_text("description: a crash midway through unlink_anon_vmas()\n"
                        "processes:\n  - name: P\n    vmas:\n"
                        "      - {name: A, start: 0x10000, pages: 1, prot: rw, faulted: true}\n"
                        "steps:\n  - {fork: P, child: C}\n  - {munmap: C/A}\n")
    result = CliRunner().invoke(main, ["run", str(scenario), "-p", str(tree), "--format",
                                       "json"])
    assert result.exit_code == 0, result.output
    final = json.loads(result.output)["runs"][0]["snapshots"][-1]
    assert [f["kind"] for f in final["findings"]][:1] == ["CRASH"]
    assert final["findings"][0]["where"] == "C/A"     # the VMA being unlinked
    assert "I4" not in [f["kind"] for f in final["findings"]]
    counters = {av["name"]: av["counters"]["num_children"] for av in final["anon_vmas"]}
    assert counters["AV1"] == 1, final["anon_vmas"]


@pytest.mark.parametrize("code,message", [
    ("\tfor (;;)\n\t\t;\n", r"anon_vma_fork: still running after 1 s of CPU time, stopped "
                            r"\(an endless loop\? ANONDIFF_KTREE_TIMEOUT sets the limit\)"),
    ("\t__builtin_abort();\n", r"anon_vma_fork: abort\(\) \(SIGABRT\)"),
    ("\t__builtin_trap();\n", r"anon_vma_fork: invalid instruction at 0x[0-9a-f]+ "
                              r"\(a trap, SIGILL\)"),
])
def test_endless_loop_abort_and_trap_are_crashes_at_their_step(
        tree61: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: str,
        message: str) -> None:
    """anon_vma_fork() patched to never return, to call abort(), to trap: each ends the replay
    with a crash at the fork, within the time limit, and anondiff goes on."""
    monkeypatch.setenv("ANONDIFF_KTREE_TIMEOUT", "1")
    anchor = "\terror = anon_vma_clone(vma, pvma);"
    tree = copy_tree(tree61, tmp_path, ("mm/rmap.c", anchor, code + anchor))
    t0 = time.monotonic()
    result = CliRunner().invoke(main, ["run", SEED, "-p", str(tree), "--final-only"])
    assert time.monotonic() - t0 < 60
    assert result.exit_code == 0, result.output
    assert re.search(r"CRASH .*: " + message, result.output), result.output
    again = run(copy_tree(tree61, tmp_path / "clean"))
    assert again.exit_code == 0 and "CRASH" not in again.output


MERGE_BACK = """\
description: B made writable again merges back into A, and C goes too (both faulted, AV0)
processes:
  - name: P
    vmas:
      - {name: A, start: 0x7f0000000000, pages: 1, prot: rw, faulted: true, anon_vma: AV0}
      - {name: B, start: 0x7f0000001000, pages: 1, prot: r, faulted: true, anon_vma: AV0}
      - {name: C, start: 0x7f0000002000, pages: 1, prot: rw, faulted: true, anon_vma: AV0}
steps:
  - {mprotect: P/B, prot: rw}
"""


def test_merge_removes_a_vma_through_the_trees_own_anon_vma_merge(tree61: Path,
                                                                  tmp_path: Path) -> None:
    """6.1 has the static inline anon_vma_merge() (include/linux/rmap.h): a merge removing a
    faulted VMA runs it, so a patch to it shows, here its VM_BUG_ON_VMA turned around."""
    scenario = tmp_path / "merge-back.yaml"
    scenario.write_text(MERGE_BACK)
    plain = CliRunner().invoke(main, ["run", str(scenario), "-p", str(copy_tree(
        tree61, tmp_path / "plain")), "--format", "json"])
    assert plain.exit_code == 0, plain.output
    assert "VM_BUG_ON" not in plain.output
    tree = copy_tree(tree61, tmp_path / "patched", (
        "include/linux/rmap.h", "VM_BUG_ON_VMA(vma->anon_vma != next->anon_vma, vma);",
        "VM_BUG_ON_VMA(vma->anon_vma == next->anon_vma, vma);"))
    result = CliRunner().invoke(main, ["run", str(scenario), "-p", str(tree), "--format", "json"])
    assert result.exit_code == 0, result.output
    # twice: B and C are both removed into A, each through anon_vma_merge()
    assert len(re.findall(r"VM_BUG_ON_VMA.{0,80}include/linux/rmap\.h:\d+", result.output,
                          re.S)) == 2, result.output


FORK_TWO = """\
description: P, two faulted VMAs far apart, forks C.
processes:
  - name: P
    vmas:
      - {name: A, start: 0x10000, pages: 1, prot: rw, faulted: true}
      - {name: B, start: 0x20000, pages: 1, prot: rw, faulted: true}
steps:
  - {fork: P, child: C}
"""


def test_anon_vma_pointer_to_no_slab_object(tree61: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A patch that makes each fork child's anon_vma->parent point outside the slab (a static
    struct): that pointer is an anon_vma of its own to anondiff (never linked, so unnamed),
    and the fork's records, which then go over one by one, give what the bulk reader would."""
    from anondiff.ktree import binding
    scenario = tmp_path / "fork-two.yaml"
    scenario.write_text(FORK_TWO)
    tree = copy_tree(tree61, tmp_path / "patched", (
        "mm/rmap.c", "\tanon_vma->parent = pvma->anon_vma;",
        "\t{ static struct anon_vma outside; anon_vma->parent = &outside; }"))
    outputs = []
    for bulk in (True, False):
        monkeypatch.setattr(binding.Binding, "bulk_fork", bulk)
        result = CliRunner().invoke(main, ["run", str(scenario), "-p", str(tree),
                                           "--final-only", "--format", "json"])
        assert result.exit_code == 0, result.output
        outputs.append(result.output)
    assert outputs[0] == outputs[1]
    final = json.loads(outputs[0])["runs"][0]["snapshots"][0]
    avs = {av["name"]: av for av in final["anon_vmas"]}
    assert {name: av["parent"] for name, av in avs.items()} == {
        "AV1": "AV1", "AV2": "AV2", "AV3": "(unnamed)", "AV4": "(unnamed)"}
    assert (avs["AV3"]["root"], avs["AV4"]["root"]) == ("AV1", "AV2")


FORK_SIX = """\
description: P, six faulted one-page VMAs of AV0 (alternating protections), forks C.
processes:
  - name: P
    vmas:
""" + "".join(f"      - {{name: v{i}, start: {0x7f0000000000 + i * 0x1000:#x}, pages: 1, "
              f"prot: {'rw' if i % 2 == 0 else 'r'}, faulted: true, anon_vma: AV0}}\n"
              for i in range(6)) + """\
steps:
  - {fork: P, child: C}
  - {exit: P}
"""


@pytest.mark.parametrize("code,seen", [
    ("\tif (vma->vm_start >= 0x7f0000003000UL)\n\t\tpvma = NULL;\n",
     "anon_vma_fork: NULL pointer dereference"),
    ("\tWARN_ON(vma->vm_start >= 0x7f0000003000UL);\n", "WARN_ON"),
])
def test_a_fork_whose_pair_goes_wrong_midway(tree61: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch, code: str,
                                            seen: str) -> None:
    """A fork whose fourth pair crashes, or warns: the three pairs before it were read in bulk
    as they came and their records not kept (glue.c: kt_inc_partial()), the rest and the
    anon_vmas' state from the records; what the run shows is what the record-by-record
    reader shows."""
    from anondiff.ktree import binding
    scenario = tmp_path / "fork-six.yaml"
    scenario.write_text(FORK_SIX)
    anchor = "\terror = anon_vma_clone(vma, pvma);"
    tree = copy_tree(tree61, tmp_path / "patched", ("mm/rmap.c", anchor, code + anchor))
    in_bulk: list[int] = []
    apply_fork = binding.Binding._apply_fork

    def counting(self, fast, children, parents):  # type: ignore[no-untyped-def]
        in_bulk.append(len(children))
        return apply_fork(self, fast, children, parents)

    monkeypatch.setattr(binding.Binding, "_apply_fork", counting)
    outputs = []
    for bulk in (True, False):
        monkeypatch.setattr(binding.Binding, "bulk_fork", bulk)
        result = CliRunner().invoke(main, ["run", str(scenario), "-p", str(tree),
                                           "--format", "json"])
        assert result.exit_code == 0, result.output
        outputs.append(result.output)
    assert in_bulk == [3]
    assert seen in outputs[0]
    assert outputs[0] == outputs[1]


#: a gcc whose child (as cc1 is the driver's) keeps writing its temporary file until killed
FAKE_GCC = """#!/bin/sh
(while :; do echo x > "$TMPDIR/cc1.s"; sleep 0.02; done) &
echo $$ $! > "$MARK"
wait
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:    # a zombie is dead; its parent has yet to reap it
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("signame, code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_an_interrupted_build_leaves_nothing_behind(tree61: Path, tmp_path: Path,
                                                    signame: str, code: int) -> None:
    """Ctrl-C (or a kill) while gcc compiles a tree: exit 128 + the signal, and neither gcc's
    temporary files (in $TMPDIR) nor the build directory (in the cache) are left, even from
    a child of gcc's that the signal did not reach (anondiff alone was signalled)."""
    import os
    import signal

    from .test_output import interrupted
    (tmp_path / "bin").mkdir()
    (tmp_path / "tmp").mkdir()
    gcc = tmp_path / "bin" / "gcc"
    gcc.write_text(FAKE_GCC)
    gcc.chmod(0o755)
    mark = tmp_path / "gcc-started"
    env = {**os.environ, "CC": str(gcc), "MARK": str(mark), "TMPDIR": str(tmp_path / "tmp"),
           "XDG_CACHE_HOME": str(tmp_path / "cache")}
    tree = copy_tree(tree61, tmp_path / "tree")

    def gcc_started(pid: int) -> bool:
        return mark.exists() and mark.read_bytes().endswith(b"\n")

    status, out, err = interrupted(["run", SEED, "-p", str(tree)], signame, gcc_started, env)
    assert mark.exists(), err
    assert status == code, err
    assert out == b"" and b"Traceback" not in err
    pids = [int(pid) for pid in mark.read_text().split()]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.02)
    alive = [pid for pid in pids if _alive(pid)]
    for pid in alive:           # (not left running after the test)
        os.kill(pid, signal.SIGKILL)
    assert alive == [], "gcc or its child outlived anondiff"
    assert os.listdir(tmp_path / "tmp") == []
    builds = tmp_path / "cache" / "anondiff" / "build"
    assert not builds.exists() or os.listdir(builds) == []
