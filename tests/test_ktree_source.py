"""anondiff.ktree.source: tree arguments, names, the extraction cache, patched private copies;
and the real Debian trees when ``python -m anondiff.ktree.debian`` has fetched them."""
from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from anondiff.ktree import debian, pack, source
from anondiff.ktree.source import TreeSpec, TreeSpecError, kernel_version, open_tree, parse_spec

MAKEFILE = """\
# SPDX-License-Identifier: GPL-2.0
VERSION = 6
PATCHLEVEL = 99
SUBLEVEL = 3
EXTRAVERSION = -rc2
NAME = Test Tree
"""
RMAP = "".join(f"/* rmap line {i} */\n" for i in range(1, 41))


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own cache directory."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def make_tree(top: Path) -> Path:
    files = {"Makefile": MAKEFILE, "mm/rmap.c": RMAP, "mm/vma.c": "int vma;\n",
             "mm/damon/core.c": "int damon;\n", "include/linux/rmap.h": "struct anon_vma;\n",
             "include/linux/sched/mm.h": "/* sched */\n", "lib/rbtree.c": "/* rb */\n",
             "fs/exec.c": "int exec;\n", "mm/Kconfig": "config MMU\n"}
    for rel, text in files.items():
        (top / rel).parent.mkdir(parents=True, exist_ok=True)
        (top / rel).write_text(text)
    return top


def make_tarball(tmp_path: Path, name: str = "linux-source-6.99.tar.xz") -> Path:
    tree = make_tree(tmp_path / "src" / "linux-source-6.99")
    out = tmp_path / name
    with tarfile.open(out, "w:xz" if name.endswith(".xz") else "w:gz") as tf:
        tf.add(tree, arcname="linux-source-6.99")
    return out


def snapshot(top: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(top)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(top.rglob("*")) if p.is_file()}


def diff_5_to_x(path: str = "mm/rmap.c") -> str:
    return (f"--- a/{path}\n+++ b/{path}\n@@ -4,3 +4,3 @@\n /* rmap line 4 */\n"
            "-/* rmap line 5 */\n+/* patched */\n /* rmap line 6 */\n")


# ---------------------------------------------------------------------------------------------
# parse_spec

def test_parse_directory_tarball_and_policy_names(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "linux")
    tarball = make_tarball(tmp_path)
    assert parse_spec(str(tree)) == TreeSpec(tree, ())
    assert parse_spec(str(tarball)) == TreeSpec(tarball, ())
    for name in ("v6.1", "clone-rework-2026", "degree", "v6.1+v6.12", "missing/policy.py",
                 "docs/examples/clone_rework_2026_ordered.py"):
        assert parse_spec(name) is None


def test_parse_patches_in_order(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "linux")
    (tmp_path / "a.diff").write_text(diff_5_to_x())
    (tmp_path / "v3+fix.mbox").write_text(diff_5_to_x())
    spec = parse_spec(f"{tree}+{tmp_path}/v3+fix.mbox+{tmp_path}/a.diff")
    assert spec == TreeSpec(tree, (tmp_path / "v3+fix.mbox", tmp_path / "a.diff"))


def test_parse_plus_in_tree_name_and_tilde(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    tree = make_tree(tmp_path / "src" / "linux+rt")
    (tmp_path / "v3.mbox").write_text(diff_5_to_x())
    assert parse_spec("~/src/linux+rt") == TreeSpec(tree, ())
    assert parse_spec("~/src/linux+rt+~/v3.mbox") == TreeSpec(tree, (tmp_path / "v3.mbox",))


def test_parse_errors(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "linux")
    with pytest.raises(TreeSpecError) as e:
        parse_spec(f"{tree}+{tmp_path}/v4.mbox")
    assert str(e.value) == f"{tree}+{tmp_path}/v4.mbox: '{tmp_path}/v4.mbox': no such patch file"
    with pytest.raises(TreeSpecError, match=r"^linux-source-9\.9\.tar\.xz: no such kernel "):
        parse_spec("linux-source-9.9.tar.xz")
    (tmp_path / "empty").mkdir()
    with pytest.raises(TreeSpecError, match=r"empty: not a kernel source tree \(expected a dir"):
        parse_spec(str(tmp_path / "empty"))


# ---------------------------------------------------------------------------------------------
# names

@pytest.mark.parametrize("makefile, version", [
    (MAKEFILE, "6.99.3-rc2"),
    ("VERSION = 6\nPATCHLEVEL = 13\nSUBLEVEL = 0\nEXTRAVERSION =\n", "6.13.0"),
    ("VERSION = 2\nPATCHLEVEL = 6\nSUBLEVEL = 34\nEXTRAVERSION = .7\n", "2.6.34.7"),
    ("VERSION = 3\nPATCHLEVEL =\nSUBLEVEL =\n", "3"),
    ("# not a kernel\nall:\n", None),
])
def test_kernel_version_as_the_makefile_computes_it(makefile: str, version: str | None) -> None:
    assert kernel_version(makefile) == version


def test_directory_named_by_makefile_and_read_in_place(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "linux")
    t = open_tree(parse_spec(str(tree)))  # type: ignore[arg-type]
    assert t.name == "6.99.3-rc2" and t.root == tree
    assert t.read("mm/rmap.c") == RMAP
    assert t.read("mm/missing.c") is None
    assert t.read("fs/exec.c") is None  # exists, but not one of the files made available


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_git_checkout_named_by_git_describe(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "linux")
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.org",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.org",
               GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1")

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(tree), *args], env=env, check=True,
                              capture_output=True, text=True).stdout.strip()

    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "base")
    git("tag", "-a", "v6.99-rc2", "-m", "v6.99-rc2")
    assert open_tree(TreeSpec(tree, ())).name == "v6.99-rc2"
    (tree / "mm/vma.c").write_text("int vma2;\n")
    git("commit", "-qam", "next")
    head = git("rev-parse", "HEAD")
    name = open_tree(TreeSpec(tree, ())).name
    assert name.startswith("v6.99-rc2-1-g") and head.startswith(name.split("-g")[-1])
    key = open_tree(TreeSpec(tree, ())).key
    (tree / "mm/rmap.c").write_text(RMAP + "/* edited */\n")
    edited = open_tree(TreeSpec(tree, ()))
    assert edited.name.endswith("-dirty") and edited.key != key
    (tree / "fs/exec.c").write_text("int exec2;\n")  # not made available: not dirty for us
    git("checkout", "-q", "mm/rmap.c")
    assert not open_tree(TreeSpec(tree, ())).name.endswith("-dirty")


def two_patches() -> str:
    """An mbox of two patches to make_tree()'s mm/rmap.c, changing its lines 1 and 2."""
    return "".join(
        f"From {n}{n}{n} Mon Sep 17 00:00:00 2001\nFrom: d <d@example.org>\n"
        f"Subject: [PATCH v3 {n}/2] mm/rmap: change {n}\n\n---\n"
        f"--- a/mm/rmap.c\n+++ b/mm/rmap.c\n@@ -{n},1 +{n},1 @@\n"
        f"-/* rmap line {n} */\n+/* change {n} */\n\n" for n in (1, 2))


def test_patched_name_lists_the_subjects(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "linux")
    mbox = two_patches()
    (tmp_path / "v3.mbox").write_text(mbox)
    (tmp_path / "fix.diff").write_text(diff_5_to_x())
    t = open_tree(parse_spec(f"{tree}+{tmp_path}/v3.mbox+{tmp_path}/fix.diff"))  # type: ignore
    assert t.name == ("6.99.3-rc2 + [PATCH v3 1/2] mm/rmap: change 1, "
                      "[PATCH v3 2/2] mm/rmap: change 2, fix.diff")
    assert t.read("mm/rmap.c") == RMAP.replace("rmap line 1 ", "change 1 ").replace(
        "rmap line 2 ", "change 2 ").replace("rmap line 5 ", "patched ")



def test_series_cut_short_is_one_line_exit_2(tmp_path: Path) -> None:
    """-p TREE+cut.mbox, the series ending after patch 2/2's ---/+++ lines: not a run with
    patch 1/2 alone, but one line naming the file, the line and the patch."""
    from click.testing import CliRunner

    from anondiff.cli import main

    tree = make_tree(tmp_path / "linux")
    mbox = two_patches()
    cut = mbox[:mbox.rindex("@@ -2,1")]
    (tmp_path / "cut.mbox").write_text(cut)
    scenario = Path(__file__).parent.parent / "scenarios" / "endless-growth.yaml"
    result = CliRunner().invoke(main, ["run", "-p", f"{tree}+{tmp_path}/cut.mbox",
                                       str(scenario)])
    assert result.exit_code == 2
    assert result.output == (
        f"anondiff: {tmp_path}/cut.mbox:17: [PATCH v3 2/2] mm/rmap: change 2: file header "
        "without any hunk (expected an '@@ -a,b +c,d @@' line after '+++ b/mm/rmap.c')\n")



def test_patches_from_a_pipe_and_a_fifo_read_once(tmp_path: Path) -> None:
    """-p TREE+<(git diff) is TREE+/dev/fd/63: a pipe, read once (a second read would find it
    empty), its content the key; a plain diff from it is named by its path, an mbox by its
    subjects. Opening the tree again in the same process (search does) finds the content kept."""
    import threading

    tree = make_tree(tmp_path / "linux")
    (tmp_path / "x.diff").write_text(diff_5_to_x())
    from_file = open_tree(parse_spec(f"{tree}+{tmp_path}/x.diff"))  # type: ignore[arg-type]
    r, w = os.pipe()
    try:
        os.write(w, diff_5_to_x().encode())
        os.close(w)
        spec = parse_spec(f"{tree}+/dev/fd/{r}")
        assert spec == TreeSpec(tree, (Path(f"/dev/fd/{r}"),))
        piped = open_tree(spec)  # type: ignore[arg-type]
        assert piped.name == f"6.99.3-rc2 + /dev/fd/{r}"
        assert piped.key == from_file.key and piped.read("mm/rmap.c") == from_file.read(
            "mm/rmap.c")
        again = open_tree(spec)  # type: ignore[arg-type]
        assert (again.key, again.name) == (piped.key, piped.name)
    finally:
        os.close(r)

    fifo = tmp_path / "series.fifo"
    os.mkfifo(fifo)
    mbox = ("From: d <d@example.org>\nSubject: [PATCH] mm/rmap: from a fifo\n\n---\n"
            + diff_5_to_x())
    writer = threading.Thread(target=fifo.write_text, args=(mbox,))
    writer.start()
    try:
        t = open_tree(parse_spec(f"{tree}+{fifo}"))  # type: ignore[arg-type]
    finally:
        writer.join(timeout=10)
    assert t.name == "6.99.3-rc2 + [PATCH] mm/rmap: from a fifo" and t.key != from_file.key
    assert t.read("mm/rmap.c") == from_file.read("mm/rmap.c")
    assert source._stream_label(Path("/dev/stdin")) == "stdin"



class _TreePolicy:
    """What distinct_names() looks at in a KernelTreePolicy (which needs gcc to make)."""

    def __init__(self, spec: str) -> None:
        self.tree = open_tree(parse_spec(spec))  # type: ignore[arg-type]
        self.name = self.tree.name

    def rename(self, name: str) -> None:
        self.name = name


def test_different_trees_of_one_name_get_different_names(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two different patches both called fix.diff, or two directory trees of one Makefile
    version, are told apart by their paths as given; names that do not collide, and one
    policy given twice, keep their names."""
    from anondiff.policies import distinct_names

    monkeypatch.chdir(tmp_path)
    make_tree(tmp_path / "a" / "linux")
    make_tree(tmp_path / "b" / "linux")
    for d, text in (("v1", diff_5_to_x()), ("v2", diff_5_to_x().replace("patched", "other")),
                    ("v3", diff_5_to_x())):
        (tmp_path / d).mkdir()
        (tmp_path / d / "fix.diff").write_text(text)

    def names(*specs: str) -> list[str]:
        pols = [_TreePolicy(spec) for spec in specs]
        distinct_names(pols, specs)  # type: ignore[arg-type]
        return [p.name for p in pols]

    assert names("a/linux+v1/fix.diff", "a/linux+v2/fix.diff", "a/linux") == [
        "6.99.3-rc2 + v1/fix.diff", "6.99.3-rc2 + v2/fix.diff", "6.99.3-rc2"]
    # the same bytes: one policy (one key), one name
    assert names("a/linux+v1/fix.diff", "a/linux+v3/fix.diff") == ["6.99.3-rc2 + fix.diff"] * 2
    assert names("a/linux", "b/linux") == ["6.99.3-rc2 (a/linux)", "6.99.3-rc2 (b/linux)"]
    # the same patch on two trees: the trees are what differs
    assert names("a/linux+v1/fix.diff", "b/linux+v3/fix.diff") == [
        "6.99.3-rc2 (a/linux) + fix.diff", "6.99.3-rc2 (b/linux) + fix.diff"]
    assert names("a/linux+v1/fix.diff", "b/linux+v2/fix.diff") == [
        "6.99.3-rc2 (a/linux) + v1/fix.diff", "6.99.3-rc2 (b/linux) + v2/fix.diff"]


# ---------------------------------------------------------------------------------------------
# tarballs and the cache

def test_tarball_extracted_once_only_the_files_made_available(
        tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tarball = make_tarball(tmp_path)
    first = open_tree(parse_spec(str(tarball)))  # type: ignore[arg-type]
    assert first.name == "6.99.3-rc2"
    assert first.root.parent == cache / "anondiff" / "trees"
    made_available = ["Makefile", "include/linux/rmap.h", "include/linux/sched/mm.h",
                      "lib/rbtree.c", "mm/damon/core.c", "mm/rmap.c", "mm/vma.c"]
    assert sorted(pack.read_index(first.root) or {}) == made_available
    for rel in made_available:
        assert first.read(rel) == (tmp_path / "src/linux-source-6.99" / rel).read_text(), rel
    assert first.read("fs/exec.c") is None and first.read("mm/Kconfig") is None
    # the files the cut reads are files too (to copy and edit into a patch by hand)
    files = sorted(str(p.relative_to(first.root)) for p in first.root.rglob("*")
                   if p.is_file() and not p.name.startswith(".anondiff-"))
    assert files == ["Makefile", "include/linux/rmap.h", "lib/rbtree.c", "mm/rmap.c",
                     "mm/vma.c"]
    before = (first.root / "mm/rmap.c").stat()

    def no_extraction(*args: object) -> None:
        raise AssertionError("extracted again")

    monkeypatch.setattr(source, "_read_members", no_extraction)
    again = open_tree(parse_spec(str(tarball)))  # type: ignore[arg-type]
    after = (again.root / "mm/rmap.c").stat()
    assert (again.root, again.key, again.name) == (first.root, first.key, first.name)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    # the same bytes under another name share the extraction
    copy = tmp_path / "copy.tar.xz"
    shutil.copyfile(tarball, copy)
    assert open_tree(TreeSpec(copy, ())).root == first.root


@pytest.mark.parametrize("name", ["linux.tar.gz", "linux.tar.xz"])
@pytest.mark.parametrize("tools", [True, False])
def test_tarball_read_in_one_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str,
                                  tools: bool) -> None:
    """A .tar.gz, or a .tar.xz in one xz block: a decompressor process (or Python's own
    module when there is none) feeding one pass over the tar."""
    tarball = make_tarball(tmp_path, name)
    if not tools:
        monkeypatch.setattr(shutil, "which", lambda cmd: None)
    t = open_tree(TreeSpec(tarball, ()))
    assert t.read("mm/damon/core.c") == "int damon;\n" and t.read("fs/exec.c") is None
    assert t.read("Makefile") == MAKEFILE
    assert not (t.root / "fs").exists()


def test_not_a_kernel_tarball(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d/README").write_text("hello\n")
    with tarfile.open(tmp_path / "other.tar.gz", "w:gz") as tf:
        tf.add(tmp_path / "d", arcname="other")
    with pytest.raises(TreeSpecError, match=r"other\.tar\.gz: not a kernel source tarball"):
        open_tree(TreeSpec(tmp_path / "other.tar.gz", ()))


def test_patches_never_touch_the_users_tree_or_the_extraction(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "linux")
    (tmp_path / "x.diff").write_text(diff_5_to_x() + "--- /dev/null\n+++ b/mm/new.c\n"
                                     "@@ -0,0 +1 @@\n+int new;\n")
    before = snapshot(tree)
    patched = open_tree(parse_spec(f"{tree}+{tmp_path}/x.diff"))  # type: ignore[arg-type]
    assert snapshot(tree) == before
    assert patched.root != tree and patched.name == "6.99.3-rc2 + x.diff"
    assert "/* patched */" in (patched.read("mm/rmap.c") or "")
    assert patched.read("mm/new.c") == "int new;\n"
    for rel in ("mm/vma.c", "mm/damon/core.c", "include/linux/rmap.h",
                "include/linux/sched/mm.h", "lib/rbtree.c", "Makefile"):
        assert patched.read(rel) == (tree / rel).read_text(), rel
    assert patched.read("fs/exec.c") is None and not (patched.root / "fs").exists()
    assert open_tree(TreeSpec(tree, ())).read("mm/rmap.c") == RMAP

    tarball = make_tarball(tmp_path)
    plain = open_tree(TreeSpec(tarball, ()))
    extracted = snapshot(plain.root)
    on_tar = open_tree(TreeSpec(tarball, (tmp_path / "x.diff",)))
    assert snapshot(plain.root) == extracted
    assert on_tar.read("mm/rmap.c") == patched.read("mm/rmap.c")
    assert len({plain.key, on_tar.key, patched.key}) == 3
    # a second open reuses the private copy
    assert open_tree(TreeSpec(tarball, (tmp_path / "x.diff",))).root == on_tar.root


def test_patch_that_does_not_apply_is_a_tree_spec_error(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "linux")
    (tmp_path / "x.diff").write_text(diff_5_to_x().replace("line 6", "line 7"))
    with pytest.raises(TreeSpecError) as e:
        open_tree(parse_spec(f"{tree}+{tmp_path}/x.diff"))  # type: ignore[arg-type]
    assert str(e.value) == (f"{tmp_path}/x.diff:3: mm/rmap.c: hunk #1 does not apply "
                            "(@@ -4,3 +4,3 @@: its 3 context and removed lines are not in the "
                            "file)")


# ---------------------------------------------------------------------------------------------
# the real Debian trees (fetched by `python -m anondiff.ktree.debian ...`, as .ci/run does)

@pytest.mark.parametrize("package", ["linux-source-5.10", "linux-source-6.1",
                                     "linux-source-6.12", "linux-source-7.2"])
def test_debian_tree(package: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.undo()  # the user's real cache: that is where the tarballs are
    tarball = debian.cached(package)
    if tarball is None:
        pytest.skip(f"{package} not fetched: python -m anondiff.ktree.debian {package}")
    tree = open_tree(parse_spec(str(tarball)))  # type: ignore[arg-type]
    series = package.removeprefix("linux-source-")
    assert tree.name.startswith(series + ".")
    assert tree.name == (debian.cached_version(package) or "").split("-")[0]
    rmap = tree.read("mm/rmap.c")
    assert rmap is not None and "anon_vma_fork(struct vm_area_struct *vma" in rmap
    assert tree.read("include/linux/rmap.h") is not None
    assert tree.read("scripts/checkpatch.pl") is not None


# ---------------------------------------------------------------------------------------------
# anondiff.ktree.debian without the network

def test_debian_cached_and_fetch_never_download_twice(cache: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    assert debian.cached("linux-source-6.1") is None
    kept = cache / "anondiff" / "debian" / "linux-source-6.1.tar.xz"
    kept.parent.mkdir(parents=True)
    kept.write_bytes(b"tarball")

    def no_apt(*args: object) -> None:
        raise AssertionError("apt-get run for a cached package")

    monkeypatch.setattr(debian, "_Apt", no_apt)
    assert debian.cached("linux-source-6.1") == kept
    assert debian.fetch("linux-source-6.1") == kept


def test_debian_bad_package_name(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(debian.FetchError, match=r"^linux-image-6\.1: not a Debian kernel "
                       r"source package \(expected linux-source-N\.M"):
        debian.cached("linux-image-6.1")
    assert debian.main(["linux-image-6.1"]) == 2
    out = capsys.readouterr()
    assert out.out == "" and out.err.count("\n") == 1


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")
def test_debian_unpack_takes_only_the_tarball(tmp_path: Path) -> None:
    root = tmp_path / "pkg"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN/control").write_text(
        "Package: linux-source-6.99\nVersion: 6.99.1-1\nArchitecture: all\n"
        "Maintainer: t <t@example.org>\nDescription: test\n")
    (root / "usr/src").mkdir(parents=True)
    (root / "usr/src/linux-source-6.99.tar.xz").write_bytes(b"the tarball")
    (root / "usr/share/doc").mkdir(parents=True)
    (root / "usr/share/doc/README").write_text("doc\n")
    deb = tmp_path / "linux-source-6.99_6.99.1-1_all.deb"
    subprocess.run(["dpkg-deb", "-Zgzip", "--build", str(root), str(deb)], check=True,
                   capture_output=True)
    work = tmp_path / "work"
    work.mkdir()
    got = debian._unpack_source(deb, "linux-source-6.99", work)
    assert got.read_bytes() == b"the tarball"
    assert [str(p.relative_to(work)) for p in sorted(work.rglob("*")) if p.is_file()] == [
        "usr/src/linux-source-6.99.tar.xz"]
    with pytest.raises(debian.FetchError, match=r"cannot unpack usr/src/linux-source-6\.98"):
        debian._unpack_source(deb, "linux-source-6.98", work)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_git_format_patch_series_with_cover_letter(tmp_path: Path) -> None:
    """A real `git format-patch --cover-letter -v3` series: long subjects folded over two
    header lines, a non-ASCII author, a new file and a hunk for a file outside the set."""
    work = make_tree(tmp_path / "work")
    env = dict(os.environ, GIT_AUTHOR_NAME="Jöhn Dëveloper", GIT_AUTHOR_EMAIL="j@example.org",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.org",
               GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1")

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(work), *args], env=env, check=True,
                              capture_output=True, text=True).stdout

    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "base")
    (work / "mm/rmap.c").write_text(RMAP.replace("rmap line 20 ", "first "))
    (work / "fs/exec.c").write_text("int exec2;\n")
    long = "mm/rmap: a subject long enough that git folds it over two lines of the header"
    git("commit", "-qam", long)
    (work / "mm/new.c").write_text("int new;\n")
    (work / "mm/rmap.c").write_text(RMAP.replace("rmap line 20 ", "second "))
    git("add", ".")
    git("commit", "-qm", "mm: second")
    out = git("format-patch", "-q", "--cover-letter", "-v3", "--stdout", "HEAD~2")
    (tmp_path / "v3.mbox").write_text(out)

    tree = make_tree(tmp_path / "linux")
    t = open_tree(parse_spec(f"{tree}+{tmp_path}/v3.mbox"))  # type: ignore[arg-type]
    assert t.name == f"6.99.3-rc2 + [PATCH v3 1/2] {long}, [PATCH v3 2/2] mm: second"
    assert t.read("mm/rmap.c") == RMAP.replace("rmap line 20 ", "second ")
    assert t.read("mm/new.c") == "int new;\n"
    assert (tree / "fs/exec.c").read_text() == "int exec;\n"
