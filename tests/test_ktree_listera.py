"""Trees of the VMA-list era (v3.19 .. v6.0): Debian's 5.10, and how its era is read.

find_mergeable_anon_vma() of these trees reads ``vma->vm_next`` and ``vma->vm_prev``, which the
glue sets from each call's window; what dup_mmap() does around anon_vma_fork() (the
``tmp->vm_prev`` it leaves, what a VM_WIPEONFORK VMA gets: spec section 1.11) is read from the
tree's kernel/fork.c by :func:`anondiff.ktree.recipe.fork_rules`.  The 5.10 tree's own code is
edited here as a patch under review might, back to the v4.14 .. v5.5 dup_mmap(), to check the
model's loop with the tree's C code against a Python policy of that behaviour.  Skipped without
gcc or the linux-source-5.10 tarball (see test_ktree_equivalence.py).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from anondiff.cli import main
from anondiff.engine import replay
from anondiff.kernel.fork import ABSENT, EMPTY, NONE, PARENT, PREPARE, DupMmap
from anondiff.ktree import recipe
from anondiff.policies import get
from anondiff.policies.eras import SplitCountersV510
from anondiff.scenario import load

from .test_ktree_equivalence import ROOT, differences, tarball
from .test_ktree_errors import FILES, run

WIPE = str(ROOT / "scenarios/kernel-runs/wipe_poke_parent.yaml")
#: 5.10's vm_area_dup() clears the list pointers (v5.6, Li Xinhai's "mm: set vm_next and vm_prev
#: to NULL in vm_area_dup()"); without that line it is the byte copy of v4.19 .. v5.5
CLEARS = "\t\tnew->vm_next = new->vm_prev = NULL;\n"
#: 5.10's VM_WIPEONFORK branch, and the v4.14 .. v5.5 one (anon_vma_prepare() at fork)
WIPE_EMPTY = "\t\t\ttmp->anon_vma = NULL;\n\t\t} else if (anon_vma_fork(tmp, mpnt))"
WIPE_PREPARE = ("\t\t\ttmp->anon_vma = NULL;\n\t\t\tif (anon_vma_prepare(tmp))\n"
                "\t\t\t\tgoto fail_nomem_anon_vma_fork;\n\t\t} else if (anon_vma_fork(tmp, mpnt))")


@pytest.fixture(scope="module")
def tree510(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The files the cut and the rules read, from Debian's 5.10 tree, in a directory."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed (Debian package gcc)")
    path = tarball("5.10")
    if path is None:
        pytest.skip("no linux-source-5.10.tar.xz in ~/.cache/anondiff/debian/ "
                    "(python -m anondiff.ktree.debian linux-source-5.10)")
    from anondiff.ktree.source import open_tree, parse_spec
    spec = parse_spec(str(path))
    assert spec is not None
    tree = open_tree(spec)
    dst = tmp_path_factory.mktemp("linux-5.10")
    for rel in FILES + [recipe.FORK_C, "mm/mremap.c", "mm/mprotect.c"]:
        text = tree.read(rel)
        if text is not None:
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            (dst / rel).write_text(text)
    return dst


def edited(src: Path, dst: Path, *edits: tuple[str, str, str]) -> Path:
    shutil.copytree(src, dst)
    for rel, old, new in edits:
        text = (dst / rel).read_text()
        assert old in text, f"{old!r} not in {rel}"
        (dst / rel).write_text(text.replace(old, new, 1))
    return dst


def rules(tree: Path) -> DupMmap:
    def read(rel: str) -> str | None:
        p = tree / rel
        return p.read_text() if p.is_file() else None
    return recipe.fork_rules(read, maple=False)


def test_fork_rules_read_from_dup_mmap(tree510: Path, tmp_path: Path) -> None:
    assert rules(tree510) == (NONE, EMPTY)
    byte_copy = edited(tree510, tmp_path / "copy", (recipe.FORK_C, CLEARS, ""))
    assert rules(byte_copy) == (PARENT, EMPTY)
    prepare = edited(tree510, tmp_path / "prepare", (recipe.FORK_C, CLEARS, ""),
                     (recipe.FORK_C, WIPE_EMPTY, WIPE_PREPARE))
    assert rules(prepare) == (PARENT, PREPARE)
    # v4.19's dup_mmap() clears them itself, after anon_vma_fork(): still the parent's then
    late = edited(tree510, tmp_path / "late", (recipe.FORK_C, CLEARS, ""),
                  (recipe.FORK_C, "\t\ttmp->vm_flags &= ~(VM_LOCKED | VM_LOCKONFAULT);\n",
                   "\t\ttmp->vm_flags &= ~(VM_LOCKED | VM_LOCKONFAULT);\n"
                   "\t\ttmp->vm_next = tmp->vm_prev = NULL;\n"))
    assert rules(late) == (PARENT, EMPTY)
    # before v4.14 there is no VM_WIPEONFORK
    text = (tree510 / recipe.FORK_C).read_text()
    start = text.index("\t\tif (tmp->vm_flags & VM_WIPEONFORK) {")
    end = text.index("} else if (anon_vma_fork(tmp, mpnt))", start)
    absent = edited(tree510, tmp_path / "absent",
                    (recipe.FORK_C, text[start:end + len("} else ")], "\t\t"),
                    (recipe.FORK_C, "if (!(tmp->vm_flags & VM_WIPEONFORK))", "if (1)"))
    assert rules(absent).wipeonfork == ABSENT
    # a list-era tree without kernel/fork.c cannot tell
    (tmp_path / "absent" / recipe.FORK_C).unlink()
    with pytest.raises(recipe.TreeUnsupported, match=r"dup_mmap\(\) not found"):
        rules(tmp_path / "absent")


def test_the_5_10_tree_as_a_directory_equals_v5_10_stable(tree510: Path) -> None:
    sc = load(WIPE)
    ours = replay(sc, get(str(tree510)))
    theirs = replay(sc, get("v5.10-stable"))
    assert not differences(ours.final, theirs.final)
    child = ours.final.process("C")
    assert [v.anon_vma for v in child.vmas] == [None, None]   # v5.6+: unfaulted copies


class PreparedAtFork(SplitCountersV510):
    """v5.10-stable with the dup_mmap() of v4.14 .. v5.5: the child's VM_WIPEONFORK VMAs are
    prepared at fork through vm_prev/vm_next still pointing into the parent."""
    name = "v5.10-stable-prepared-at-fork"
    dup_mmap = DupMmap(vm_prev=PARENT, wipeonfork=PREPARE)


def test_wipeonfork_prepared_through_the_parents_neighbours(tree510: Path,
                                                            tmp_path: Path) -> None:
    """The 5.10 tree edited back to v4.14 .. v5.5's dup_mmap(): the model's loop calls the
    tree's __anon_vma_prepare() for each VM_WIPEONFORK copy with the parent's neighbours as
    vm_prev/vm_next, and its find_mergeable_anon_vma() hands W2's copy the parent's W1
    anon_vma ("poking parent VMAs"), as the Python policy of that behaviour does."""
    tree = edited(tree510, tmp_path / "prepare", (recipe.FORK_C, CLEARS, ""),
                  (recipe.FORK_C, WIPE_EMPTY, WIPE_PREPARE))
    policy = get(str(tree))
    assert policy.dup_mmap == (PARENT, PREPARE)
    sc = load(WIPE)
    ours, theirs = replay(sc, policy), replay(sc, PreparedAtFork())
    assert [s.label for s in ours.snapshots] == [s.label for s in theirs.snapshots]
    for a, b in zip(ours.snapshots, theirs.snapshots):
        assert not differences(a, b), a.label + ":\n" + "\n".join(differences(a, b))
    parent, child = ours.final.process("P"), ours.final.process("C")
    assert child.vmas[0].anon_vma is not None
    assert [v.anon_vma for v in child.vmas] == [parent.vmas[0].anon_vma] * 2
    # and the unedited tree leaves them unfaulted: the comparison sees the difference
    assert differences(replay(sc, get(str(tree510))).final, theirs.final)


def test_anon_vma_clone_reading_the_vma_list_is_refused(tree510: Path, tmp_path: Path) -> None:
    """v5.5's anon_vma_clone() (commit 4e4a9eb92133) read the parent's vm_prev at fork, which
    this shim does not serve: one line, exit 2."""
    tree = edited(tree510, tmp_path / "wei", (
        "mm/rmap.c", "\tlist_for_each_entry_reverse(pavc, &src->anon_vma_chain, same_vma) {",
        "\tif (src->vm_prev)\n\t\troot = NULL;\n"
        "\tlist_for_each_entry_reverse(pavc, &src->anon_vma_chain, same_vma) {"))
    result = run(tree)
    assert result.exit_code == 2
    line = result.output.strip()
    assert "\n" not in line
    assert "anon_vma_clone() reads the VMA list (vm_prev/vm_next)" in line, line


def test_cli_runs_the_5_10_tree(tree510: Path) -> None:
    result = CliRunner().invoke(main, ["run", WIPE, "-p", str(tree510), "--final-only"])
    assert result.exit_code == 0, result.output
    assert "5.10.223" in result.output
