"""What a patch changes besides the recipe's functions: a new helper it adds (cut from the
tree too), and code anondiff does not compile (a warning, since the change has no effect).

The trees are the minimal 6.1 copies of tests/test_ktree_errors.py (skipped without gcc or
the tarball)."""
from __future__ import annotations

import difflib
import subprocess
import sys
from pathlib import Path

from .test_ktree_errors import ROOT, copy_tree, tree61  # noqa: F401 (a fixture)

SCENARIO = str(ROOT / "scenarios" / "endless-growth.yaml")
#: 6.1's reuse rule in anon_vma_clone()
RULE = "anon_vma->num_children < 2 &&\n\t\t    anon_vma->num_active_vmas == 0)"


def with_helper(most: int) -> tuple[str, str, str]:
    """An edit of mm/rmap.c: the rule moved into a new static helper and a new macro, as a
    patch under review would write it (``most`` children at most: 2 is 6.1's own rule)."""
    helper = ("#define KT_TEST_MOST_CHILDREN %d\n\n"
              "static bool kt_test_reusable(struct anon_vma *anon_vma)\n{\n"
              "\treturn anon_vma->num_children < KT_TEST_MOST_CHILDREN &&\n"
              "\t       anon_vma->num_active_vmas == 0;\n}\n\n" % most)
    return ("mm/rmap.c", "int anon_vma_clone(struct vm_area_struct *dst",
            helper + "int anon_vma_clone(struct vm_area_struct *dst")


def anondiff(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "anondiff", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def edited(tree: Path, dst: Path, *edits: tuple[str, str, str]) -> Path:
    copy = copy_tree(tree, dst)
    for rel, old, new in edits:
        text = (copy / rel).read_text()
        assert old in text, f"{old!r} not in {rel}"
        (copy / rel).write_text(text.replace(old, new, 1))
    return copy


def patch_file(tree: Path, out: Path, *edits: tuple[str, str, str]) -> Path:
    """A unified diff (``diff -u``) of ``edits`` to ``tree``'s files."""
    lines: list[str] = []
    for rel, old, new in edits:
        before = (tree / rel).read_text()
        assert old in before, f"{old!r} not in {rel}"
        lines += difflib.unified_diff(before.splitlines(True),
                                      before.replace(old, new, 1).splitlines(True),
                                      f"a/{rel}", f"b/{rel}")
    out.write_text("".join(lines))
    return out


def test_a_patchs_new_helper_and_macro_are_cut_too(tree61: Path, tmp_path: Path) -> None:
    plain = copy_tree(tree61, tmp_path / "plain")
    call = ("mm/rmap.c", RULE, "kt_test_reusable(anon_vma))")
    same = edited(tree61, tmp_path / "same", with_helper(2), call)
    never = edited(tree61, tmp_path / "never", with_helper(0), call)
    r = anondiff("compare", "-p", str(plain), "-p", str(same), SCENARIO)
    assert (r.returncode, r.stderr) == (0, ""), r.stderr
    # the helper does run: reusing no anon_vma gives another topology
    r = anondiff("compare", "-p", str(plain), "-p", str(never), SCENARIO, "--final-only")
    assert r.returncode == 1, r.stderr
    assert "anon_vmas allocated" in r.stdout


def test_a_helper_the_tree_does_not_define_is_still_an_error(tree61: Path,
                                                             tmp_path: Path) -> None:
    tree = edited(tree61, tmp_path / "t", ("mm/rmap.c", RULE, "kt_test_nowhere(anon_vma))"))
    r = anondiff("run", SCENARIO, "-p", str(tree))
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith("anondiff: tree 6.1.176: kt_test_nowhere: used by mm/rmap.c:")
    assert "(in anon_vma_clone) but not supplied by the shim" in r.stderr
    assert r.stderr.count("\n") == 1


def test_a_change_to_code_that_is_not_compiled_is_warned(tree61: Path, tmp_path: Path) -> None:
    """expand_downwards() (mm/mmap.c) is the model's business, not the tree's: a patch to it
    leaves the policy as it was, and the user is told where; the compiled change is not."""
    tree = copy_tree(tree61, tmp_path / "tree")
    outside = ("mm/mmap.c", "\tif (!(vma->vm_flags & VM_GROWSDOWN))\n\t\treturn -EFAULT;",
               "\tif (!(vma->vm_flags & VM_GROWSDOWN))\n\t\treturn -ENOMEM;")
    comment = ("mm/rmap.c", "int anon_vma_clone(struct vm_area_struct *dst",
               "/* a comment between functions changes nothing */\n"
               "int anon_vma_clone(struct vm_area_struct *dst")
    rule = ("mm/rmap.c", RULE, "anon_vma->num_children < 0)")
    p = patch_file(tree, tmp_path / "x.diff", outside, comment, rule)
    text = (tree / "mm/mmap.c").read_text()
    line = text[:text.index(outside[1])].count("\n") + 2     # the return's line
    r = anondiff("compare", "-p", str(tree), "-p", f"{tree}+{p}", SCENARIO, "--final-only")
    assert r.returncode == 1        # the rule's change took effect
    warnings = r.stderr.splitlines()
    assert len(warnings) == 1, r.stderr
    assert warnings[0].startswith("anondiff: warning: 6.1.176 + x.diff: mm/mmap.c:")
    assert "(in expand_downwards): the patches change code that is not compiled" in warnings[0]
    assert f"mm/mmap.c:{line} (in expand_downwards)" in warnings[0]
    # the same again: from the cache, the same warning
    r2 = anondiff("run", SCENARIO, "-p", f"{tree}+{p}", "--final-only")
    assert r2.returncode == 0 and r2.stderr == r.stderr


def test_a_patch_to_no_file_the_cut_reads_is_warned(tree61: Path, tmp_path: Path) -> None:
    tree = copy_tree(tree61, tmp_path / "tree")
    p = tmp_path / "drivers.diff"
    p.write_text("--- a/drivers/char/mem.c\n+++ b/drivers/char/mem.c\n"
                 "@@ -1,1 +1,1 @@\n-old\n+new\n")
    r = anondiff("compare", "-p", str(tree), "-p", f"{tree}+{p}", SCENARIO, "--final-only")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ("anondiff: warning: 6.1.176 + drivers.diff: the patches change none of "
                        "the files the anon_vma code is cut from; the policy is the unpatched "
                        "tree's\n")


def test_a_change_to_dup_mmap_is_warned_unless_it_changes_what_is_read_of_it(
        tree61: Path, tmp_path: Path) -> None:
    """dup_mmap() is not compiled, but two things are read from it (recipe.fork_rules()):
    what a VM_WIPEONFORK VMA gets, and vm_prev.  A change to them takes effect: no warning."""
    from anondiff.ktree.source import open_tree, parse_spec

    from .test_ktree_equivalence import tarball
    tree = copy_tree(tree61, tmp_path / "tree")
    spec = parse_spec(str(tarball("6.1")))
    assert spec is not None
    fork_c = open_tree(spec).read("kernel/fork.c")     # (kept in the extraction's pack)
    assert fork_c is not None
    (tree / "kernel").mkdir()
    (tree / "kernel/fork.c").write_text(fork_c)
    other = ("kernel/fork.c", "\t\tretval = -EINTR;\n\t\tgoto fail_uprobe_end;",
             "\t\tretval = -EAGAIN;\n\t\tgoto fail_uprobe_end;")
    wipe = ("kernel/fork.c", "\t\t\ttmp->anon_vma = NULL;\n\t\t} else if",
            "\t\t\ttmp->anon_vma = NULL;\n\t\t\tanon_vma_prepare(tmp);\n\t\t} else if")
    r = anondiff("run", SCENARIO, "-p", f"{tree}+{patch_file(tree, tmp_path / 'o.diff', other)}")
    assert r.returncode == 0
    assert r.stderr.startswith("anondiff: warning: 6.1.176 + o.diff: kernel/fork.c:")
    assert "(in dup_mmap): the patches change code" in r.stderr and r.stderr.count("\n") == 1
    both = patch_file(tree, tmp_path / "w.diff", other, wipe)
    r = anondiff("run", SCENARIO, "-p", f"{tree}+{both}")
    assert (r.returncode, r.stderr) == (0, "")


def test_search_ends_a_crash_at_its_step(tree61: Path, tmp_path: Path) -> None:
    """search against a tree whose reuse at fork dereferences NULL: one kind of finding, the
    crash, and the scenario found ends at the step that crashed (under the other policy the
    steps after it would make differences of their own)."""
    import json

    from anondiff.scenario import load
    plain = copy_tree(tree61, tmp_path / "plain")
    crash = edited(tree61, tmp_path / "crash",
                   ("mm/rmap.c", RULE + "\n\t\t\tdst->anon_vma = anon_vma;",
                    RULE + "\n\t\t\t((struct vm_area_struct *)NULL)->anon_vma = anon_vma;"))
    r = anondiff("search", "-p", str(plain), "-p", str(crash), "--count", "300", "--seed", "5",
                 "--all", "-o", f"{tmp_path}/found/")
    assert r.returncode == 1, r.stderr
    files = sorted((tmp_path / "found").glob("*.yaml"))
    assert len(files) == 1, r.stderr
    assert r.stderr.startswith("anondiff search: found 1 (") and ": CRASH) in 300 " in r.stderr
    out = anondiff("run", str(files[0]), "--format", "json")
    steps = len(load(str(files[0])).steps)
    crashes = [f for run in json.loads(out.stdout)["runs"] for snap in run["snapshots"]
               for f in snap["findings"] if f["kind"] == "CRASH"]
    assert crashes and all(f["step"] == steps for f in crashes), (crashes, steps)
